"""Safe retrieval: what pairs, what needs an attendant, what is refused."""
import pytest

from parkinglot.records import matching, vehicles

from .factories import enter, make_site


def setup(session):
    site, entry, exit_ = make_site(session)
    enter(session, site, entry, "AB123", ticket="T-1")
    enter(session, site, entry, "KX55")
    session.commit()
    return site


def test_exact_plate_pairs(db, session):
    site = setup(session)
    m = matching.match_exit(session, site.id, "AB123")
    assert m.outcome == "paired" and m.reason == "exact_plate" and m.session.plate == "AB123"


def test_ticket_and_matching_plate_pairs(db, session):
    site = setup(session)
    m = matching.match_exit(session, site.id, "AB123", ticket="T-1")
    assert m.outcome == "paired" and m.reason == "ticket_and_plate"


def test_ticket_with_another_plate_is_refused_as_theft(db, session):
    site = setup(session)
    m = matching.match_exit(session, site.id, "KX55", ticket="T-1")
    assert m.outcome == "refused" and m.alert_kind == "ticket_mismatch"


def test_lookalike_only_needs_an_attendant(db, session):
    site = setup(session)
    m = matching.match_exit(session, site.id, "A8I23")
    assert m.outcome == "needs_attendant" and m.reason == "fuzzy_match_only"
    assert m.session is None
    assert m.candidates[0].plate == "AB123"


def test_recogniser_alternative_is_only_a_suggestion(db, session):
    site = setup(session)
    m = matching.match_exit(session, site.id, "KX56", alternatives=["KX55"])
    assert m.outcome == "needs_attendant" and m.candidates[0].plate == "KX55"


def test_no_entry_is_refused(db, session):
    site = setup(session)
    m = matching.match_exit(session, site.id, "QQ999")
    assert m.outcome == "refused" and m.reason == "no_entry" and m.alert_kind == "no_entry"


def test_locked_vehicle_is_refused(db, session):
    site = setup(session)
    vehicles.lock_vehicle(session, site_id=site.id, plate="AB123", user_id=None, note="owner on holiday")
    m = matching.match_exit(session, site.id, "AB123")
    assert m.outcome == "refused" and m.alert_kind == "locked_vehicle" and m.session.plate == "AB123"


def test_hotlisted_plate_is_refused_even_with_a_valid_ticket(db, session):
    site = setup(session)
    vehicles.add_to_hotlist(session, plate="AB123", reason="reported stolen")
    m = matching.match_exit(session, site.id, "AB123", ticket="T-1")
    assert m.outcome == "refused" and m.alert_kind == "hotlist"


def test_expired_stay_goes_to_attendant(db, session):
    from datetime import timedelta

    from parkinglot.records import stays

    from .factories import T0

    site = setup(session)
    stays.expire_overdue(session, site, now=T0 + timedelta(hours=1000))
    m = matching.match_exit(session, site.id, "AB123")
    assert m.outcome == "needs_attendant" and m.reason == "stay_expired"


def test_locked_vehicle_is_refused_even_with_its_own_ticket(db, session):
    site = setup(session)
    vehicles.lock_vehicle(session, site_id=site.id, plate="AB123", user_id=None, note="owner on holiday")
    m = matching.match_exit(session, site.id, "AB123", ticket="T-1")
    assert m.outcome == "refused" and m.reason == "vehicle_locked" and m.alert_kind == "locked_vehicle"
    assert m.session.plate == "AB123"
    vehicles.release_lock(session, site_id=site.id, plate="AB123", user_id=None, note="owner back")
    assert matching.match_exit(session, site.id, "AB123", ticket="T-1").outcome == "paired"


@pytest.mark.parametrize("read", ["A8123", "ABI23", "AB1Z3", "AB12", "AB1234"])
def test_ticket_whose_plate_only_looks_like_the_read_goes_to_an_attendant(db, session, read):
    """Look-alike characters, or one character dropped or added: a suggestion, never a release."""
    site = setup(session)
    m = matching.match_exit(session, site.id, read, ticket="T-1")
    assert m.outcome == "needs_attendant" and m.reason == "ticket_plate_lookalike" and not m.paired
    assert m.session.plate == "AB123" and m.candidates[0].plate == "AB123"


@pytest.mark.parametrize("read", ["AC124", "BA123", "AB1", "AB1X", "KX55"])
def test_ticket_with_a_plate_two_edits_away_is_refused_as_theft(db, session, read):
    site = setup(session)
    m = matching.match_exit(session, site.id, read, ticket="T-1")
    assert m.outcome == "refused" and m.reason == "ticket_plate_mismatch" and m.alert_kind == "ticket_mismatch"
    assert m.session.plate == "AB123"  # the stay the ticket belongs to stays open for review


def test_a_ticket_that_is_not_the_cars_own_is_refused(db, session):
    from parkinglot.records import stays

    from .factories import later

    site, entry, _ = make_site(session)
    enter(session, site, entry, "AB123", ticket="T-1")
    old = enter(session, site, entry, "ZZ9", later(-120), ticket="T-OLD")  # another car, gone since
    stays.close_stay(session, old, exited_at=later(-60))
    session.commit()
    for ticket in ("T-UNKNOWN", "T-OLD"):
        m = matching.match_exit(session, site.id, "AB123", ticket=ticket)
        assert m.outcome == "refused" and m.reason == "ticket_plate_mismatch", ticket
        assert m.alert_kind == "ticket_mismatch" and m.session.plate == "AB123"
    assert matching.match_exit(session, site.id, "AB123", ticket="T-1").paired
