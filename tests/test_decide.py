"""Barrier rules: every branch, and that nothing but an explicit rule opens."""
import pytest

from parkinglot.barrier import decide as d

RULES = d.SiteRules(anti_passback="deny", min_confidence=0.6)
HOTLISTED = d.StopHit("hotlist", 1, "AB123", exact=True)


def entry(rules: d.SiteRules = RULES, **kw):
    """``decide_entry`` of a confident read of AB123 with ``kw`` changed, under ``rules``."""
    return d.decide_entry(d.EntryFacts(**{"plate": "AB123", "confidence": 0.9, **kw}), rules)


def test_visitor_opens_with_ticket():
    dec = entry()
    assert dec.outcome == "open" and dec.open_stay and dec.issue_ticket and dec.reason == "visitor"


def test_hotlisted_is_denied_with_alert_even_with_permit():
    dec = entry(stop=HOTLISTED, credential=d.Credential("permit", 1, "valid"))
    assert dec.outcome == "deny" and dec.alert_kind == "hotlist" and not dec.open_stay


def test_low_confidence_goes_to_attendant():
    assert entry(confidence=0.3).outcome == "attendant"


def test_no_plate_goes_to_attendant():
    assert entry(plate="", confidence=0.0).reason == "no_plate_read"


@pytest.mark.parametrize("mode,outcome", [("deny", "deny"), ("attendant", "attendant")])
def test_anti_passback(mode, outcome):
    dec = d.decide_entry(d.EntryFacts("AB123", 0.9, already_inside=True), d.SiteRules(anti_passback=mode))
    assert dec.outcome == outcome and dec.reason == "already_inside" and not dec.open_stay


def test_anti_passback_off_supersedes_the_stale_stay():
    dec = d.decide_entry(d.EntryFacts("AB123", 0.9, already_inside=True), d.SiteRules(anti_passback="off"))
    assert dec.outcome == "open" and dec.supersede_stay


@pytest.mark.parametrize("status", ["expired", "suspended", "not_yet_valid", "outside_hours", "revoked"])
def test_invalid_credentials_never_open(status):
    dec = entry(credential=d.Credential("permit", 7, status))
    assert dec.outcome == "attendant" and dec.reason == f"permit_{status}" and not dec.open_stay


def test_valid_permit_and_pass_open_even_when_full():
    assert entry(credential=d.Credential("permit", 1, "valid"), site_full=True).outcome == "open"
    dec = entry(credential=d.Credential("visitor_pass", 2, "valid"))
    assert dec.outcome == "open" and dec.reason == "visitor_pass_valid" and not dec.issue_ticket


def test_full_site_denies_visitors():
    dec = entry(site_full=True)
    assert dec.outcome == "deny" and dec.reason == "site_full"


def exit_(rules: d.SiteRules = RULES, **kw):
    """``decide_exit`` of a confident read paired by its exact plate, with ``kw`` changed, under ``rules``."""
    facts = {"plate": "AB123", "confidence": 0.9, "match": "paired", "match_reason": "exact_plate", **kw}
    return d.decide_exit(d.ExitFacts(**facts), rules)


def test_the_helpers_decide_under_the_rules_they_are_given():
    # the site's own threshold, not the module's default, decides (0.7 opens under 0.6, not under 0.8)
    strict = d.SiteRules(min_confidence=0.8)
    assert entry(confidence=0.7).outcome == "open"
    assert entry(confidence=0.7, rules=strict).outcome == "attendant"
    assert exit_(confidence=0.7).outcome == "open"
    assert exit_(confidence=0.7, rules=strict).outcome == "attendant"
    assert entry(rules=d.SiteRules(visitors="refuse")).outcome != "open"


def test_exit_paid_opens_and_closes():
    dec = exit_()
    assert dec.outcome == "open" and dec.close_stay


def test_exit_with_fee_due_goes_to_pay_station():
    dec = exit_(fee_due_minor=350)
    assert dec.outcome == "deny" and dec.reason == "payment_required" and not dec.close_stay


def test_exit_fuzzy_only_goes_to_attendant():
    dec = exit_(match="needs_attendant", match_reason="fuzzy_match_only")
    assert dec.outcome == "attendant" and not dec.close_stay


@pytest.mark.parametrize("reason,kind", [("no_entry", "no_entry"), ("ticket_plate_mismatch", "ticket_mismatch"),
                                         ("vehicle_locked", "locked_vehicle"), ("hotlisted", "hotlist")])
def test_exit_refusals_deny_and_alert(reason, kind):
    dec = exit_(match="refused", match_reason=reason, alert_kind=kind)
    assert dec.outcome == "deny" and dec.alert_kind == kind and not dec.close_stay


def test_exit_low_confidence_needs_attendant_unless_ticket_matched():
    assert exit_(confidence=0.2).outcome == "attendant"
    assert exit_(confidence=0.2, ticket_matched=True).outcome == "open"


def test_emergency_opens_everything_and_still_raises_alerts():
    rules = d.SiteRules(emergency=True)
    assert d.decide_entry(d.EntryFacts("AB123", 0.9, stop=HOTLISTED), rules).alert_kind == "hotlist"
    assert d.decide_entry(d.EntryFacts("", 0.0), rules).outcome == "open"
    dec = d.decide_exit(d.ExitFacts("AB123", 0.9, "refused", "no_entry", "no_entry"), rules)
    assert dec.outcome == "open" and dec.alert_kind == "no_entry" and not dec.close_stay


def test_failure_fails_closed():
    assert d.failure("internal_error", "entry").outcome == "attendant"
    assert d.failure("internal_error", "exit", emergency=True).outcome == "open"


def test_emergency_entry_starts_a_stay_for_every_car_it_lets_in():
    rules = d.SiteRules(emergency=True)
    for facts in (d.EntryFacts("AB123", 0.9), d.EntryFacts("AB123", 0.1),
                  d.EntryFacts("AB123", 0.9, stop=HOTLISTED), d.EntryFacts("AB123", 0.9, site_full=True)):
        dec = d.decide_entry(facts, rules)
        assert dec.outcome == "open" and dec.open_stay, facts
    # a car already inside keeps its stay, and without a plate there is nothing to name the stay by
    assert not d.decide_entry(d.EntryFacts("AB123", 0.9, already_inside=True), rules).open_stay
    assert not d.decide_entry(d.EntryFacts("", 0.0), rules).open_stay


@pytest.mark.parametrize("kind", ["permit", "visitor_pass"])
@pytest.mark.parametrize("confidence", [0.0, 0.3, 0.59])
def test_low_confidence_goes_to_attendant_even_when_the_read_names_a_credential(kind, confidence):
    dec = entry(confidence=confidence, credential=d.Credential(kind, 1, "valid"))
    assert dec.outcome == "attendant" and dec.reason == "low_confidence" and not dec.open_stay


@pytest.mark.parametrize("due", [1, 5, 99, 100, 101, 350])
def test_exit_with_any_amount_due_goes_to_pay_station(due):
    dec = exit_(fee_due_minor=due)
    assert dec.outcome == "deny" and dec.reason == "payment_required" and not dec.close_stay
    assert exit_(fee_due_minor=due, match_reason="ticket_and_plate", ticket_matched=True).outcome == "deny"


@pytest.mark.parametrize("direction", ["entry", "exit"])
@pytest.mark.parametrize("reason", ["internal_error", "timeout", "undecodable_frame"])
def test_failure_never_opens_outside_emergency(direction, reason):
    dec = d.failure(reason, direction)
    assert dec.outcome == "attendant" and not dec.opens and dec.reason == reason
    assert not dec.open_stay and not dec.close_stay
    assert d.failure(reason, direction, emergency=True).opens
