"""Every car accounted for (issue 19, part 3), on SQLite and PostgreSQL.

A car let in by hand gets a stay; a car let out by hand, by a confirmed match or by an
evacuation with money owed leaves an unpaid balance naming who approved it and why;
reconciliation shows those balances and their write-offs, and the roll-up and the audit
chain still verify.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parkinglot.barrier import events, lanes
from parkinglot.billing import balances, checkout, payments, reports
from parkinglot.records import activity, audit, revenue_rollup, users, vehicles
from parkinglot.records.errors import Conflict, InvalidInput
from parkinglot.records.models import Decision, ParkingSession, Payment, UnpaidBalance
from parkinglot.records.types import utcnow
from parkinglot.records.wallclock import zone

from .test_gate_rules import HOURLY, send, world  # noqa: F401  (world: the gate rules' fixture)

assert HOURLY["rates"]["std"]["bands"][0]["price"] == "2.00"  # 2.00 per started hour, 10 free minutes


def _inside(session, w, plate, hours=2.5):
    """A car that entered ``hours`` ago through the camera (so the fee is known: 3 started hours)."""
    return send(session, w, w["entry"], plate, utcnow() - timedelta(hours=hours)).reply.session_id


def _today(site):
    local = utcnow().astimezone(zone(site.timezone)).date()
    return reports.period(site, local - timedelta(days=1), local)


def _finance(session, w):
    user = users.create_user(session, username="fin", password="harbour-lantern-test-9", role="finance", sites=[w["site"]])
    session.commit()
    return user


def test_a_confirmed_unpaid_exit_records_what_was_owed_and_reconciliation_shows_it(session, world):
    w = world
    stay_id = _inside(session, w, "UP1234")
    result = lanes.confirm_match(session, w["exit"], w["att"], stay_id, "plate dirty, checked by eye")
    session.commit()
    stay = session.get(ParkingSession, stay_id)
    assert stay.status == "closed" and stay.fee_minor == 600  # billed like a camera exit
    owed = session.scalar(select(UnpaidBalance).where(UnpaidBalance.session_id == stay_id))
    assert result.unpaid is not None and result.unpaid.id == owed.id
    assert (owed.amount_minor, owed.cause, owed.approved_by, owed.reason) == (
        600, "confirm_match", w["att"].id, "plate dirty, checked by eye")
    assert "stay.left_unpaid" in [e.action for e in audit.history(session, "stay", stay_id)]
    rc = reports.reconciliation(session, _today(w["site"]))
    assert (rc.open_balance_minor, rc.open_balance_stays) == (600, 1)  # was 0.00 before issue 19
    [x] = rc.unpaid_exits
    assert (x.session_id, x.owed_minor, x.remaining_minor, x.approved_by, x.status) == (
        stay_id, 600, 600, "att", "open")


def test_a_paid_stay_confirmed_at_the_exit_owes_nothing(session, world):
    w = world
    stay_id = _inside(session, w, "PD1234")
    stay = session.get(ParkingSession, stay_id)
    payments.record_payment(session, w["site"], amount_minor=600, method="cash", reference="r-1", stay=stay,
                            paid_until=utcnow() + timedelta(minutes=10))
    session.commit()
    result = lanes.confirm_match(session, w["exit"], w["att"], stay_id, "plate dirty")
    session.commit()
    assert result.unpaid is None and session.scalar(select(UnpaidBalance)) is None
    assert reports.reconciliation(session, _today(w["site"])).open_balance_minor == 0


def test_writing_off_needs_finance_a_reason_and_happens_once(session, world):
    w = world
    fin = _finance(session, w)
    stay_id = _inside(session, w, "WO1234")
    owed = lanes.confirm_match(session, w["exit"], w["att"], stay_id, "checked the car").unpaid
    session.commit()
    with pytest.raises(InvalidInput, match="reason"):
        balances.write_off(session, owed, fin, " ")
    balances.write_off(session, owed, fin, "driver unreachable, small amount")
    session.commit()
    with pytest.raises(Conflict, match="already written off"):
        balances.write_off(session, owed, fin, "again")
    session.rollback()
    rc = reports.reconciliation(session, _today(w["site"]))
    assert (rc.open_balance_minor, rc.written_off_minor, rc.written_off_stays) == (0, 600, 1)
    [x] = rc.unpaid_exits
    assert (x.status, x.written_off_by, x.write_off_reason, x.approved_by) == (
        "written off", "fin", "driver unreachable, small amount", "att")
    assert revenue_rollup.differences(session) == {}
    assert audit.verify(session).ok


def test_a_balance_paid_later_is_not_written_off(session, world):
    w = world
    fin = _finance(session, w)
    stay_id = _inside(session, w, "PL1234")
    owed = lanes.confirm_match(session, w["exit"], w["att"], stay_id, "checked the car").unpaid
    payments.adjust(session, w["site"], session.get(ParkingSession, stay_id), amount_minor=600,
                    reason="paid by invoice", reference="inv-1", user_id=fin.id)
    session.commit()
    with pytest.raises(Conflict, match="paid since"):
        balances.write_off(session, owed, fin, "not needed")
    assert reports.reconciliation(session, _today(w["site"])).unpaid_exits[0].status == "settled"


# --- manual opens: the car is named -------------------------------------------------------------

def test_an_entry_opened_by_hand_needs_the_plate_and_admits_the_car(session, world):
    w = world
    with pytest.raises(InvalidInput, match="plate of the car is required"):
        lanes.open_by_hand(session, w["entry"], w["att"], "ticket machine jammed")
    with pytest.raises(InvalidInput, match="plate"):
        lanes.open_by_hand(session, w["entry"], w["att"], "ticket machine jammed", plate="AB 12!")
    session.rollback()
    result = lanes.open_by_hand(session, w["entry"], w["att"], "ticket machine jammed", plate="hm 4455")
    session.commit()
    stay = result.stay
    assert stay.status == "open" and stay.plate == "HM4455" and stay.entry_lane_id == w["entry"].id
    assert stay.tariff_version_id is not None and result.decision.session_id == stay.id
    assert "stay.admitted" in [e.action for e in audit.history(session, "stay", stay.id)]
    with pytest.raises(Conflict, match="already has an open stay"):
        lanes.open_by_hand(session, w["entry"], w["att"], "again", plate="HM4455")
    session.rollback()
    # the admitted car leaves normally through the camera (within the free minutes)
    out = send(session, w, w["exit"], "HM4455", utcnow())
    assert out.reply.decision == "open" and out.reply.session_id == stay.id


def test_a_barrier_test_opens_without_a_car_only_when_said(session, world):
    w = world
    result = lanes.open_by_hand(session, w["entry"], w["att"], "barrier test", no_vehicle=True)
    session.commit()
    assert result.stay is None and result.decision.outcome == "open"
    assert '"no_vehicle":true' in audit.history(session, "lane", w["entry"].code)[-1].data
    with pytest.raises(InvalidInput, match="not both"):
        lanes.open_by_hand(session, w["entry"], w["att"], "barrier test", plate="AB1234", no_vehicle=True)


def test_a_stopped_vehicle_is_not_admitted_by_hand(session, world):
    w = world
    vehicles.add_to_hotlist(session, plate="ST0LEN", reason="stolen")
    session.commit()
    with pytest.raises(lanes.StoppedVehicle):
        lanes.open_by_hand(session, w["entry"], w["att"], "driver insists", plate="ST0LEN")
    session.rollback()
    assert session.scalar(select(ParkingSession)) is None


def test_an_exit_opened_by_hand_for_a_named_car_closes_its_stay_and_records_the_debt(session, world):
    w = world
    stay_id = _inside(session, w, "EX4455")
    with pytest.raises(InvalidInput, match="no open stay"):
        lanes.open_by_hand(session, w["exit"], w["att"], "card reader broken", plate="EX4456")
    session.rollback()
    result = lanes.open_by_hand(session, w["exit"], w["att"], "card reader broken", plate="EX4455")
    session.commit()
    stay = session.get(ParkingSession, stay_id)
    assert stay.status == "closed" and stay.closed_reason == "manual_exit" and stay.exit_lane_id == w["exit"].id
    assert (result.unpaid.amount_minor, result.unpaid.cause, result.unpaid.approved_by) == (
        600, "manual_exit", w["att"].id)
    # without a plate the exit still opens (an override), naming no stay
    plain = lanes.open_by_hand(session, w["exit"], w["att"], "barrier stuck")
    session.commit()
    assert plain.stay is None and plain.decision.session_id is None


def test_a_held_entry_is_offered_for_admission_and_the_admitted_car_can_leave(session, world):
    w = world
    held = send(session, w, w["entry"], "LC7788", utcnow() - timedelta(minutes=2), confidence=0.3)
    assert held.reply.decision == "attendant" and held.reply.reason == "low_confidence"
    [snap] = [s for s in activity.lane_snapshots(session, [w["site"].id]) if s.lane.id == w["entry"].id]
    assert snap.held is not None and snap.held.id == held.reply.read_id
    result = lanes.open_by_hand(session, w["entry"], w["att"], "read checked by eye", plate="LC7788",
                                read_id=held.reply.read_id)
    session.commit()
    assert result.stay.entry_read_id == held.reply.read_id  # the held photo is the entry evidence
    [snap] = [s for s in activity.lane_snapshots(session, [w["site"].id]) if s.lane.id == w["entry"].id]
    assert snap.held is None  # dealt with
    with pytest.raises(InvalidInput, match="was not taken at"):
        lanes.open_by_hand(session, w["entry"], w["att"], "again", plate="LC7789", read_id=10 ** 6)
    session.rollback()
    out = send(session, w, w["exit"], "LC7788", utcnow())
    assert out.reply.decision == "open" and out.reply.reason != "no_entry"


def test_an_evacuation_exit_that_owed_money_is_put_down_to_who_switched_it_on(session, world):
    w = world
    stay_id = _inside(session, w, "EV1234")
    lanes.set_emergency(session, w["site"], True, w["sup"], "fire alarm")
    session.commit()
    out = send(session, w, w["exit"], "EV1234", utcnow())
    assert out.reply.decision == "open" and out.reply.reason == "emergency_mode"
    owed = session.scalar(select(UnpaidBalance).where(UnpaidBalance.session_id == stay_id))
    assert (owed.cause, owed.amount_minor, owed.approved_by) == ("emergency_exit", 600, w["sup"].id)
    assert session.scalar(select(Decision).where(Decision.session_id == stay_id, Decision.lane_id == w["exit"].id))


def test_the_database_refuses_an_unpaid_balance_without_a_reason_or_amount(session, world):
    w = world
    stay_id = _inside(session, w, "DB1234")
    stay = session.get(ParkingSession, stay_id)
    with pytest.raises(InvalidInput):
        balances.record_unpaid(session, w["site"], stay, due_minor=100, cause="confirm_match", reason="",
                               lane=w["exit"], user=w["att"])
    with pytest.raises(InvalidInput):
        balances.record_unpaid(session, w["site"], stay, due_minor=100, cause="stolen", reason="why not",
                               lane=w["exit"], user=w["att"])
    assert balances.record_unpaid(session, w["site"], stay, due_minor=0, cause="confirm_match", reason="paid",
                                  lane=w["exit"], user=w["att"]) is None
    session.add(UnpaidBalance(site_id=w["site"].id, session_id=stay_id, amount_minor=-5, currency="EUR",
                              cause="manual_exit", reason="x", created_at=utcnow()))
    from sqlalchemy.exc import IntegrityError
    with pytest.raises(IntegrityError):
        session.flush()


# --- settling an unpaid balance later (the driver comes back to pay) -------------------------------

def _left_owing_days_ago(session, w, plate, days=3):
    """A car let out by hand ``days`` ago after 2.5 h inside, owing 6.00 (an open unpaid balance)."""
    stay_id = _inside(session, w, plate, hours=24 * days + 2.5)
    stay = session.get(ParkingSession, stay_id)
    closed = balances.close_owing(session, stay, lane=w["exit"], user=w["att"], cause="manual_exit",
                                  reason="card reader broken", closed_reason="manual_exit",
                                  at=utcnow() - timedelta(days=days))
    session.commit()
    return stay, closed.unpaid


def _local_day(site, at):
    return at.astimezone(zone(site.timezone)).date()


def test_an_unpaid_balance_is_settled_later_for_exactly_what_is_owed(session, world):
    w = world
    stay, owed = _left_owing_days_ago(session, w, "ST1234")
    exit_day, today = _local_day(w["site"], stay.exited_at), _local_day(w["site"], utcnow())
    q = checkout.quote_stay(session, w["site"], stay)
    assert (q.balance.id, q.status.due_minor, q.exit_by) == (owed.id, 600, None)
    assert q.to_dict()["basis"] == "unpaid_balance" and q.to_dict()["amount_due"] == "6.00"
    with pytest.raises(checkout.AmountMismatch, match="6.00 EUR due"):
        checkout.take_payment(session, w["site"], stay, amount_minor=500, method="cash", reference="desk:a",
                              user=w["att"])
    session.rollback()
    taken = checkout.take_payment(session, w["site"], stay, amount_minor=600, method="card", reference="desk:b",
                                  terminal_ref="TRM-77", user=w["att"])
    session.commit()
    assert taken.created and taken.payment.amount_minor == 600 and taken.payment.terminal_ref == "TRM-77"
    ev = [e for e in audit.history(session, "stay", stay.id) if e.action == "stay.balance_settled"]
    assert len(ev) == 1 and ev[0].actor_type == "user" and ev[0].actor_id == str(w["att"].id)
    # a retry of the same payment is the same payment; another one is refused: nothing is owed
    again = checkout.take_payment(session, w["site"], stay, amount_minor=600, method="card", reference="desk:b",
                                  terminal_ref="TRM-77", user=w["att"])
    assert not again.created and again.payment.id == taken.payment.id
    with pytest.raises(checkout.StayClosed, match="settled"):
        checkout.take_payment(session, w["site"], stay, amount_minor=600, method="cash", reference="desk:c",
                              user=w["att"])
    session.rollback()
    with pytest.raises(Conflict, match="paid since"):
        balances.write_off(session, owed, _finance(session, w), "not needed")
    session.rollback()
    # reconciliation of the exit day: settled, nothing open; revenue counts it on the day it was paid
    rc = reports.reconciliation(session, reports.period(w["site"], exit_day, exit_day))
    [x] = rc.unpaid_exits
    assert (x.status, x.owed_minor, x.remaining_minor) == ("settled", 600, 0)
    assert (rc.open_balance_minor, rc.open_balance_stays, rc.written_off_minor) == (0, 0, 0)
    assert reports.revenue(session, w["site"], exit_day, exit_day).totals.takings_minor == 0
    assert reports.revenue(session, w["site"], today, today).totals.takings_minor == 600
    assert revenue_rollup.differences(session) == {}
    assert audit.verify(session).ok


def test_a_written_off_or_never_owed_closed_stay_cannot_be_paid(session, world):
    w = world
    stay, owed = _left_owing_days_ago(session, w, "WF1234")
    balances.write_off(session, owed, _finance(session, w), "driver unreachable")
    session.commit()
    for call in (lambda: checkout.quote_stay(session, w["site"], stay),
                 lambda: checkout.take_payment(session, w["site"], stay, amount_minor=600, method="cash",
                                               reference="desk:w", user=w["att"])):
        with pytest.raises(checkout.StayClosed, match="written off"):
            call()
        session.rollback()
    # a stay that left owing nothing is refused as before
    paid_id = _inside(session, w, "NO1234")
    paid = session.get(ParkingSession, paid_id)
    payments.record_payment(session, w["site"], amount_minor=600, method="cash", reference="r-9", stay=paid,
                            paid_until=utcnow() + timedelta(minutes=10))
    lanes.confirm_match(session, w["exit"], w["att"], paid_id, "plate dirty")
    session.commit()
    with pytest.raises(checkout.StayClosed, match="cannot be paid here"):
        checkout.take_payment(session, w["site"], paid, amount_minor=600, method="cash", reference="desk:n",
                              user=w["att"])
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.reference.like("desk:%"))) == 0


def test_voiding_the_settling_payment_reopens_the_balance(session, world):
    w = world
    stay, owed = _left_owing_days_ago(session, w, "VO1234")
    exit_day = _local_day(w["site"], stay.exited_at)
    taken = checkout.take_payment(session, w["site"], stay, amount_minor=600, method="cash", reference="desk:v",
                                  user=w["att"])
    session.commit()
    payments.void(session, w["site"], taken.payment, reason="keyed on the wrong stay", user_id=w["sup"].id)
    session.commit()
    [x] = reports.reconciliation(session, reports.period(w["site"], exit_day, exit_day)).unpaid_exits
    assert (x.status, x.remaining_minor) == ("open", 600)
    assert checkout.quote_stay(session, w["site"], stay).status.due_minor == 600  # payable again
    assert revenue_rollup.differences(session) == {}
