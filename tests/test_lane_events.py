"""Lane events end to end at the service level: tariffs, payments, permits, passes, emergency."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from parkinglot.barrier import events, lanes
from parkinglot.billing import payments, tariffs
from parkinglot.records import audit, permits, users
from parkinglot.records.evidence import EvidenceStore
from parkinglot.records.models import Alert, BarrierCommand, ParkingSession, Site

from .factories import T0, make_site

HOURLY = {
    "schema": 1, "currency": "EUR",
    "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]},
              "perm": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "0.50"}]}},
    "week": {"mon-sun": "std"},
    "free": {"minutes": 10, "mode": "threshold"},
    "exit_grace_min": 15,
}


@pytest.fixture
def world(db, session, tmp_path):
    site, entry, exit_ = make_site(session, issues_tickets=True, capacity=2)
    tariffs.create_version(session, site, code="std", name="Hourly", rules=HOURLY,
                           effective_from=T0 - timedelta(days=1), make_default=True)
    session.commit()
    return {"site": site, "entry": entry, "exit": exit_, "store": EvidenceStore(tmp_path / "ev")}


def send(session, w, lane, plate, at, **kw):
    ev = events.LaneEvent(lane_id=lane.id, captured_at=at, received_at=at,
                          reading=events.Reading(plate=plate, raw_text=plate, confidence=kw.pop("confidence", 0.95),
                                                 source="camera"), **kw)
    out = events.process(session, w["store"], ev)
    session.commit()
    return out.reply


def test_visitor_pays_then_leaves_within_grace(session, world):
    w = world
    r = send(session, w, w["entry"], "AB123", T0)
    assert r.decision == "open" and r.ticket
    out = send(session, w, w["exit"], "AB123", T0 + timedelta(minutes=95))
    assert out.decision == "deny" and out.reason == "payment_required" and out.fee_due == "4.00"
    assert out.currency == "EUR"
    stay = session.get(ParkingSession, r.session_id)
    assert stay.status == "open"
    from parkinglot.billing.fees import fee_status

    status = fee_status(session, w["site"], stay, T0 + timedelta(minutes=96))
    payments.record_payment(session, w["site"], amount_minor=status.due_minor, method="card",
                            reference="ps-1", stay=stay, paid_until=status.paid_until)
    session.commit()
    out = send(session, w, w["exit"], "AB123", T0 + timedelta(minutes=100))
    assert out.decision == "open" and out.session_id == r.session_id
    session.refresh(stay)
    assert stay.status == "closed" and stay.fee_minor == 400


def test_short_stay_inside_free_time_opens(session, world):
    w = world
    send(session, w, w["entry"], "FREE1", T0)
    assert send(session, w, w["exit"], "FREE1", T0 + timedelta(minutes=8)).decision == "open"


def test_anti_passback_and_capacity(session, world):
    w = world
    send(session, w, w["entry"], "CAR1", T0)
    again = send(session, w, w["entry"], "CAR1", T0 + timedelta(minutes=5))
    assert again.decision == "deny" and again.reason == "already_inside"
    send(session, w, w["entry"], "CAR2", T0 + timedelta(minutes=6))
    full = send(session, w, w["entry"], "CAR3", T0 + timedelta(minutes=7))
    assert full.decision == "deny" and full.reason == "site_full"


def test_permit_holder_opens_when_full_and_expired_permit_goes_to_attendant(session, world):
    w = world
    site = w["site"]
    permits.create_permit(session, site, number="P1", holder="Tenant", vehicles=["PERM1"],
                          valid_from=T0 - timedelta(days=10), valid_to=T0 + timedelta(days=10), rate="perm")
    permits.create_permit(session, site, number="P2", holder="Gone", vehicles=["OLD1"],
                          valid_from=T0 - timedelta(days=20), valid_to=T0 - timedelta(days=1))
    session.commit()
    send(session, w, w["entry"], "V1", T0)
    send(session, w, w["entry"], "V2", T0)
    r = send(session, w, w["entry"], "PERM1", T0 + timedelta(minutes=1))
    assert r.decision == "open" and r.reason == "permit_valid"
    stay = session.get(ParkingSession, r.session_id)
    assert stay.permit_id is not None
    r = send(session, w, w["entry"], "OLD1", T0 + timedelta(minutes=2))
    assert r.decision == "attendant" and r.reason == "permit_expired"


def test_visitor_pass_window(session, world):
    w = world
    permits.create_visitor_pass(session, w["site"], plate="GUEST1", valid_from=T0 + timedelta(hours=1),
                                valid_to=T0 + timedelta(hours=5))
    session.commit()
    early = send(session, w, w["entry"], "GUEST1", T0)
    assert early.decision == "attendant" and early.reason == "visitor_pass_not_yet_valid"
    ok = send(session, w, w["entry"], "GUEST1", T0 + timedelta(hours=2))
    assert ok.decision == "open" and ok.reason == "visitor_pass_valid"


def test_emergency_mode_opens_every_lane_and_is_audited(session, world):
    w = world
    admin = users.create_user(session, username="sup", password="harbour-lantern-test-9", role="supervisor", sites=[w["site"]])
    lanes.set_emergency(session, w["site"], True, admin, "fire alarm level 2")
    session.commit()
    r = send(session, w, w["exit"], "NOBODY", T0)
    assert r.decision == "open" and r.reason == "emergency_mode"
    assert session.scalar(select(Alert.kind)) == "no_entry"  # still recorded for review
    events_ = [e.action for e in audit.history(session, "site", w["site"].code)]
    assert "site.emergency_on" in events_
    with pytest.raises(Exception):
        lanes.set_emergency(session, w["site"], True, admin, "again")


def test_manual_open_requires_reason_and_names_the_user(session, world):
    from parkinglot.records.errors import InvalidInput

    w = world
    u = users.create_user(session, username="att", password="harbour-lantern-test-9", role="attendant", sites=[w["site"]])
    with pytest.raises(InvalidInput):
        lanes.manual_open(session, w["exit"], u, "  ")
    result = lanes.manual_open(session, w["exit"], u, "driver lost ticket, paid cash")
    session.commit()
    assert result.decision.user_id == u.id and result.decision.actor == "user"
    assert session.get(BarrierCommand, result.barrier_command_id).status == "pending"
    ev = audit.history(session, "lane", w["exit"].code)[-1]
    assert ev.action == "lane.manual_open" and "lost ticket" in ev.data and ev.actor_id == str(u.id)


def test_hotlisted_exit_never_closes_the_stay(session, world):
    from parkinglot.records import vehicles

    w = world
    r = send(session, w, w["entry"], "HOT9", T0)
    vehicles.add_to_hotlist(session, plate="HOT9", reason="stolen", site_id=w["site"].id)
    session.commit()
    out = send(session, w, w["exit"], "HOT9", T0 + timedelta(minutes=5))
    assert out.decision == "deny" and out.reason == "hotlisted"
    assert session.get(ParkingSession, r.session_id).status == "open"


def test_repeated_denied_reads_raise_one_alert(session, world):
    w = world
    for i in range(3):
        send(session, w, w["exit"], "GHOST1", T0 + timedelta(seconds=i))
    assert len(session.scalars(select(Alert)).all()) == 1


def test_driver_failure_is_recorded_and_alerted(db, session, world):
    from parkinglot.barrier.dispatch import execute

    w = world
    w["entry"].driver_config = {"simulate_failure": True}
    session.commit()
    r = send(session, w, w["entry"], "DRV1", T0)
    cmd_id = session.scalar(select(BarrierCommand.id))
    session.rollback()  # release SQLite's write lock before the dispatcher's own transactions
    assert execute(db.sessions, cmd_id) == "failed"
    with db.sessions() as s:
        assert s.get(BarrierCommand, cmd_id).error
        assert s.scalar(select(Alert.kind).where(Alert.kind == "driver_failure")) == "driver_failure"
        stay = s.get(ParkingSession, r.session_id)
        assert stay.status == "open"  # the decision record stands; the barrier is an attendant's problem


def test_every_stopped_vehicle_raises_its_own_alert(session, world):
    """Repeated reads of one car share an alert; different cars at the same lane do not."""
    w = world
    ghosts = ["GHOST1", "GHOST2", "NOBODY7"]
    for i, plate in enumerate(ghosts):
        out = send(session, w, w["exit"], plate, T0 + timedelta(seconds=i))
        assert out.decision == "deny" and out.reason == "no_entry"
    found = session.scalars(select(Alert).order_by(Alert.id)).all()
    assert [(a.kind, a.plate, a.lane_id) for a in found] == [("no_entry", p, w["exit"].id) for p in ghosts]


def test_emergency_openings_are_recorded_as_emergency_and_every_car_gets_a_stay(session, world):
    from parkinglot.records.models import AuditEvent, Decision

    w = world
    sup = users.create_user(session, username="sup", password="harbour-lantern-test-9", role="supervisor", sites=[w["site"]])
    send(session, w, w["entry"], "CAR1", T0)
    send(session, w, w["entry"], "CAR2", T0)  # the car park is now full (capacity 2)
    lanes.set_emergency(session, w["site"], True, sup, "evacuation drill")
    session.commit()
    inn = send(session, w, w["entry"], "FIRE1", T0 + timedelta(minutes=1), confidence=0.2)
    out = send(session, w, w["exit"], "NOBODY", T0 + timedelta(minutes=2))
    assert inn.decision == out.decision == "open" and inn.reason == out.reason == "emergency_mode"
    stay = session.get(ParkingSession, inn.session_id)
    assert stay.plate == "FIRE1" and stay.status == "open"  # an emergency entry is accounted for
    actors = {d.read_id: d.actor for d in session.scalars(select(Decision))}
    assert actors[inn.read_id] == actors[out.read_id] == "emergency"
    logged = session.scalars(select(AuditEvent.data).where(AuditEvent.action == "lane.decision")).all()
    assert sum('"actor":"emergency"' in data for data in logged) == 2


def test_a_full_zone_refuses_visitors_even_when_the_site_has_room(session, world):
    from parkinglot.records import sites

    w = world
    roof = sites.create_zone(session, w["site"], "ROOF", "Roof deck", capacity=1)
    roof_in = sites.create_lane(session, w["site"], code="S1-ROOF", name="Roof entry", direction="entry", zone=roof)
    session.commit()
    assert send(session, w, roof_in, "ROOF1", T0).decision == "open"
    full = send(session, w, roof_in, "ROOF2", T0 + timedelta(minutes=1))
    assert full.decision == "deny" and full.reason == "site_full"
    main = send(session, w, w["entry"], "ROOF2", T0 + timedelta(minutes=2))  # the main zone has room
    assert main.decision == "open"


def test_an_exit_that_loses_the_race_for_its_stay_is_not_released(session, world, monkeypatch):
    """Two exits read the same open stay; the other closes it first. This one must not open."""
    from parkinglot.records import matching, stays

    w = world
    r = send(session, w, w["entry"], "RACE1", T0)
    stay = session.get(ParkingSession, r.session_id)
    seen_open = matching.ExitMatch("paired", "exact_plate", stay)  # what this exit's match saw
    stays.close_stay(session, stay, exited_at=T0 + timedelta(minutes=4), exit_lane_id=w["exit"].id)
    session.commit()  # ... before the other exit, the winner, committed its close
    monkeypatch.setattr(events.matching, "match_exit", lambda *args, **kwargs: seen_open)
    out = send(session, w, w["exit"], "RACE1", T0 + timedelta(minutes=5))
    assert out.decision == "attendant" and out.reason == "already_closed"
    assert session.scalars(select(BarrierCommand).where(BarrierCommand.lane_id == w["exit"].id)).all() == []
    closes = [e.action for e in audit.history(session, "stay", stay.id) if e.action.startswith("stay.")]
    assert closes == ["stay.opened", "stay.closed"]


def test_a_tariff_change_applies_to_cars_entering_from_its_instant_on(session, world):
    """Versions are chosen by their effective instant: a car inside before a price change keeps
    the old rates even when it leaves after the change; a car entering after pays the new ones."""
    from parkinglot.billing import fees

    w = world
    site = w["site"]
    old = fees.current_tariff(session, site, T0)
    dearer = {**HOURLY, "rates": {**HOURLY["rates"], "std": {"bands": [
        {"from_min": 0, "to_min": None, "step_min": 60, "price": "5.00"}]}}}
    new = tariffs.create_version(session, site, code="std", name="Hourly 2026", rules=dearer,
                                 effective_from=T0 + timedelta(hours=2))
    session.commit()
    for at, expected in ((T0 - timedelta(days=2), None), (T0, old), (T0 + timedelta(hours=2, seconds=-1), old),
                         (T0 + timedelta(hours=2), new), (T0 + timedelta(days=30), new)):
        assert fees.current_tariff(session, site, at) == expected, at
    before = send(session, w, w["entry"], "EARLY1", T0)
    after = send(session, w, w["entry"], "LATE1", T0 + timedelta(hours=3))
    assert session.get(ParkingSession, before.session_id).tariff_version_id == old.id
    assert session.get(ParkingSession, after.session_id).tariff_version_id == new.id
    leaving = T0 + timedelta(hours=5, minutes=15)
    assert send(session, w, w["exit"], "EARLY1", leaving).fee_due == "12.00"  # 6 started hours at 2.00
    assert send(session, w, w["exit"], "LATE1", leaving).fee_due == "15.00"  # 3 started hours at 5.00
