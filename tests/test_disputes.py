"""Disputes: evidence snapshot on opening, the four outcomes, their money and audit, deadlines."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from parkinglot.billing import disputes, fees, payments, tariffs
from parkinglot.records import audit, reads, stays, users
from parkinglot.records.errors import Conflict, InvalidInput
from parkinglot.records.models import Dispute, Evidence, ParkingSession, Payment

from .factories import T0, later, make_site

HOURLY = {
    "schema": 1, "currency": "EUR",
    "rates": {"std": {"label": "Standard", "bands": [{"from_min": 0, "to_min": None, "step_min": 60,
                                                      "price": "2.00"}]}},
    "week": {"mon-sun": "std"},
}
DEARER = {**HOURLY, "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "9.00"}]}}}


def _photo(session, n: int) -> Evidence:
    ev = Evidence(sha256=f"{n:064x}", content_type="image/jpeg", size_bytes=1000, width=640, height=480)
    session.add(ev)
    session.flush()
    return ev


def _read(session, lane, plate, at, n):
    return reads.store_read(session, reads.ReadInput(
        lane=lane, captured_at=at, received_at=at, plate=plate, raw_text=f"{plate[:2]}-{plate[2:]}",
        confidence=0.91, candidates=[{"text": "A8123", "confidence": 0.07}], box=[[10, 10], [110, 10], [110, 40],
                                                                                   [10, 40]],
        frames=[_photo(session, n), _photo(session, n + 1)]))


@pytest.fixture
def world(session):
    site, entry, exit_ = make_site(session)
    version = tariffs.create_version(session, site, code="STD", name="Standard", rules=HOURLY,
                                     effective_from=T0 - timedelta(days=1), make_default=True)
    attendant = users.create_user(session, username="att", password="harbour-lantern-test-9", role="attendant", sites=[site])
    boss = users.create_user(session, username="sup", password="harbour-lantern-test-9", role="supervisor", sites=[site])
    r_in = _read(session, entry, "AB123", T0, 1)
    stay = stays.open_stay(session, site_id=site.id, plate="AB123", entered_at=T0, entry_lane_id=entry.id,
                           entry_read_id=r_in.id, tariff_version_id=version.id)
    r_out = _read(session, exit_, "AB123", later(150), 3)
    fee = fees.fee_status(session, site, stay, later(150)).total_minor
    assert fee == 600  # three started hours at 2.00
    stays.close_stay(session, stay, exited_at=later(150), exit_lane_id=exit_.id, exit_read_id=r_out.id, fee_minor=fee)
    return {"site": site, "stay": stay, "version": version, "att": attendant.id, "sup": boss.id}


def pay(session, w, amount, ref="pay-1"):
    return payments.record_payment(session, w["site"], amount_minor=amount, method="card", reference=ref,
                                   stay=w["stay"]).payment


def money(session, w):
    return disputes.stay_money(session, w["stay"])


def dispute_rows(session, dispute):
    return session.scalars(select(Payment).where(Payment.dispute_id == dispute.id).order_by(Payment.id)).all()


# --- opening ----------------------------------------------------------------------------------

def test_open_attaches_the_evidence(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="I was only there 50 minutes")
    ev = d.evidence
    assert d.status == "open" and d.opened_by == world["att"] and d.site_id == world["site"].id
    assert ev["entry"]["photo_sha256"] == f"{1:064x}" and ev["entry"]["frames_sha256"] == [f"{1:064x}", f"{2:064x}"]
    assert ev["exit"]["photo_sha256"] == f"{3:064x}"
    assert ev["entry"]["raw_text"] == "AB-123" and ev["entry"]["plate"] == "AB123"
    assert ev["entry"]["confidence"] == pytest.approx(0.91)
    assert ev["entry"]["alternatives"] == [{"text": "A8123", "confidence": 0.07}]
    assert ev["entry"]["box"] == [[10, 10], [110, 10], [110, 40], [10, 40]]
    assert ev["tariff"] == {"id": world["version"].id, "code": "STD", "version": 1, "name": "Standard",
                            "currency": "EUR"}
    assert ev["fee"]["total_minor"] == 600 and ev["fee"]["due_minor"] == 0
    lines = ev["fee"]["quote"]["lines"]
    assert lines and lines[0]["kind"] == "charge" and lines[0]["units"] == 3
    assert [p["amount_minor"] for p in ev["payments"]] == [600]
    # the snapshot survives the round trip through the database unchanged
    session.expire_all()
    assert session.get(Dispute, d.id).evidence == ev
    session.commit()  # audit events are chained and written at commit
    assert [e.action for e in audit.history(session, "dispute", d.id)] == ["dispute.opened"]


def test_one_open_dispute_per_stay(session, world):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="wrong time")
    with pytest.raises(Conflict):
        disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="again")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="uphold", note="photos match")
    again = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="new evidence")
    assert again.id != d.id


def test_database_refuses_a_second_open_dispute(session, world):
    disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="wrong time")
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.add(Dispute(site_id=world["site"].id, session_id=world["stay"].id, status="open", reason="dup",
                                evidence={}))
            session.flush()


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_reason_is_mandatory(session, world, reason):
    with pytest.raises(InvalidInput, match="reason"):
        disputes.open_dispute(session, world["stay"], user_id=world["att"], reason=reason)


def test_note_is_mandatory(session, world):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="wrong")
    with pytest.raises(InvalidInput, match="note"):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="uphold", note=" ")
    assert d.status == "open"


def test_unknown_outcome_is_refused(session, world):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="wrong")
    with pytest.raises(InvalidInput, match="outcome"):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="forgive", note="x")


# --- outcomes ---------------------------------------------------------------------------------

def test_uphold_moves_no_money(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="too dear")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="uphold", note="tariff applied correctly")
    assert (d.status, d.outcome, d.fee_before_minor, d.fee_after_minor) == ("resolved", "uphold", 600, 600)
    assert d.resolved_by == world["sup"] and d.resolution_note == "tariff applied correctly"
    assert dispute_rows(session, d) == []
    session.commit()  # audit events are chained and written at commit
    assert [e.action for e in audit.history(session, "dispute", d.id)] == ["dispute.opened", "dispute.resolved"]


def test_adjust_refunds_what_was_paid_beyond_the_new_fee(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="I left after 50 minutes")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="adjust", note="exit read was a tailgater",
                             corrected_exited_at=later(50))
    assert (d.fee_before_minor, d.fee_after_minor) == (600, 200)
    assert d.corrected_exited_at == later(50) and d.corrected_entered_at is None
    rows = dispute_rows(session, d)
    assert [(r.kind, r.amount_minor) for r in rows] == [("adjustment", 400), ("refund", -400)]
    assert all(r.user_id == world["sup"] and "dispute" in r.reason for r in rows)
    m = money(session, world)
    assert (m.effective_fee_minor, m.cash_minor, m.balance_minor) == (200, 200, 0)
    # the stay itself is untouched: the fee billed at exit stays on record
    session.expire_all()
    stay = session.get(ParkingSession, world["stay"].id)
    assert stay.fee_minor == 600 and stay.exited_at == later(150) and stay.status == "closed"
    assert fees.fee_status(session, world["site"], stay, stay.exited_at).due_minor == 0
    session.commit()  # audit events are chained and written at commit
    assert audit.verify(session).ok


def test_adjust_of_an_unpaid_stay_is_an_adjustment_only(session, world):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="entered later")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="adjust", note="entry read was a ghost",
                             corrected_entered_at=later(100))
    assert (d.fee_before_minor, d.fee_after_minor) == (600, 200)
    assert [(r.kind, r.amount_minor) for r in dispute_rows(session, d)] == [("adjustment", 400)]
    assert money(session, world).balance_minor == 200


def test_adjust_partially_paid(session, world):
    pay(session, world, 300)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="left early")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="adjust", note="checked camera",
                             corrected_exited_at=later(40))
    assert [(r.kind, r.amount_minor) for r in dispute_rows(session, d)] == [("adjustment", 400), ("refund", -100)]
    assert money(session, world).balance_minor == 0


def test_adjust_reprices_under_the_stays_own_tariff_version(session, world):
    """A dearer version made current after the stay began does not apply to it."""
    tariffs.create_version(session, world["site"], code="STD", name="Standard 2026", rules=DEARER,
                           effective_from=T0 - timedelta(hours=1), make_default=True)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="left early")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="adjust", note="ok",
                             corrected_exited_at=later(100))
    assert d.fee_after_minor == 400  # two hours at 2.00, not at 9.00


def test_adjust_that_raises_the_fee_is_a_negative_adjustment(session, world):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="check")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="adjust", note="entry was earlier",
                             corrected_entered_at=T0 - timedelta(hours=2))
    assert (d.fee_before_minor, d.fee_after_minor) == (600, 1000)
    assert [(r.kind, r.amount_minor) for r in dispute_rows(session, d)] == [("adjustment", -400)]
    assert money(session, world).balance_minor == 1000


@pytest.mark.parametrize("kwargs, match", [
    ({}, "corrected entry or exit"),
    ({"corrected_exited_at": T0 - timedelta(minutes=5)}, "before the corrected entry"),
    ({"corrected_exited_at": datetime(2026, 3, 2, 9, 0)}, "aware"),
])
def test_adjust_bad_input(session, world, kwargs, match):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="wrong")
    with pytest.raises(InvalidInput, match=match):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="adjust", note="x", **kwargs)
    assert d.status == "open" and dispute_rows(session, d) == []


def test_refund_outcome(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="barrier hit my car")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="refund", note="goodwill", refund_minor=200,
                             refund_method="cash")
    rows = dispute_rows(session, d)
    assert [(r.kind, r.method, r.amount_minor) for r in rows] == [("adjustment", "adjustment", 200),
                                                                 ("refund", "cash", -200)]
    assert (d.fee_before_minor, d.fee_after_minor) == (600, 400)
    assert money(session, world).balance_minor == 0


def test_refund_of_an_overpayment_keeps_the_fee(session, world):
    pay(session, world, 600)
    pay(session, world, 300, ref="pay-2")  # paid twice by mistake
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="charged twice")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="refund", note="double payment",
                             refund_minor=300)
    assert [(r.kind, r.amount_minor) for r in dispute_rows(session, d)] == [("refund", -300)]
    assert d.fee_after_minor == 600 and money(session, world).balance_minor == 0


def test_refund_above_what_was_paid_is_refused(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="x")
    with pytest.raises(InvalidInput, match="exceeds"):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="refund", note="x", refund_minor=601)
    with pytest.raises(InvalidInput, match="positive"):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="refund", note="x", refund_minor=0)
    assert d.status == "open" and dispute_rows(session, d) == []


def test_void_refunds_everything_and_zeroes_the_fee(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="not my car")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="void", note="plate cloned")
    assert [(r.kind, r.amount_minor) for r in dispute_rows(session, d)] == [("adjustment", 600), ("refund", -600)]
    assert (d.fee_before_minor, d.fee_after_minor) == (600, 0)
    m = money(session, world)
    assert (m.effective_fee_minor, m.cash_minor, m.balance_minor) == (0, 0, 0)
    session.expire_all()
    assert session.get(ParkingSession, world["stay"].id).fee_minor == 600  # never edited
    assert session.scalar(select(func.count()).select_from(Payment)) == 3  # nothing deleted


def test_void_of_an_unpaid_stay(session, world):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="not my car")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="void", note="plate cloned")
    assert [(r.kind, r.amount_minor) for r in dispute_rows(session, d)] == [("adjustment", 600)]
    assert money(session, world).balance_minor == 0


def test_unknown_refund_method_is_refused_before_anything_moves(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="x")
    with pytest.raises(InvalidInput, match="refund method"):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="void", note="x", refund_method="cheque")
    assert d.status == "open" and dispute_rows(session, d) == []


def test_resolving_twice_is_a_conflict(session, world):
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="x")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="uphold", note="fine")
    with pytest.raises(Conflict):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="void", note="changed my mind")


def test_resolution_is_audited_with_its_movements(session, world):
    pay(session, world, 600)
    d = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="x")
    disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="void", note="cloned plate")
    session.commit()  # audit events are chained and written at commit
    ev = audit.history(session, "dispute", d.id)[-1]
    assert ev.action == "dispute.resolved" and ev.actor_type == "user" and ev.actor_id == str(world["sup"])
    assert '"outcome":"void"' in ev.data and '"fee_after_minor":0' in ev.data
    money_actions = [e.action for e in audit.history(session, "payment", dispute_rows(session, d)[0].id)]
    assert money_actions == ["payment.adjusted"]
    assert audit.verify(session).ok


def test_open_stay_can_be_disputed_but_not_adjusted(session, world):
    site = world["site"]
    stay = stays.open_stay(session, site_id=site.id, plate="CD456", entered_at=later(10),
                           tariff_version_id=world["version"].id)
    d = disputes.open_dispute(session, stay, user_id=world["att"], reason="ticket machine broken",
                              now=later(200))
    assert d.evidence["stay"]["exited_at"] is None and d.evidence["fee"]["total_minor"] == 800
    with pytest.raises(InvalidInput, match="not been billed"):
        disputes.resolve_dispute(session, d, user_id=world["sup"], outcome="void", note="x")


# --- deadlines --------------------------------------------------------------------------------

def test_overdue_uses_each_sites_review_limit(session, world):
    site = world["site"]  # 14 days by default
    other, o_entry, _ = make_site(session, code="S2", dispute_review_days=2)
    now = T0 + timedelta(days=30)
    late = disputes.open_dispute(session, world["stay"], user_id=world["att"], reason="a", now=now - timedelta(days=15))
    s2 = stays.open_stay(session, site_id=site.id, plate="CD456", entered_at=later(1))
    fresh = disputes.open_dispute(session, s2, user_id=world["att"], reason="b", now=now - timedelta(days=3))
    s3 = stays.open_stay(session, site_id=other.id, plate="EF789", entered_at=later(1))
    other_late = disputes.open_dispute(session, s3, user_id=world["att"], reason="c", now=now - timedelta(days=3))
    assert [d.id for d in disputes.overdue(session, [site.id, other.id], now=now)] == [late.id, other_late.id]
    assert [d.id for d in disputes.overdue(session, [site.id], now=now)] == [late.id]
    assert disputes.overdue(session, [], now=now) == []
    disputes.resolve_dispute(session, late, user_id=world["sup"], outcome="uphold", note="ok", now=now)
    assert [d.id for d in disputes.overdue(session, [site.id, other.id], now=now)] == [other_late.id]
    assert fresh.status == "open"
