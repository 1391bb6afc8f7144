"""The gate rules of issue 18, each class with several variants, on SQLite and PostgreSQL.

No expired, revoked or forged credential, replayed event, look-alike plate or wrong clock may
open a barrier. The service-level tests drive ``barrier.events.process`` with explicit server
(``received_at``) and controller (``captured_at``) clocks; the API tests go through HTTP.
"""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parkinglot import plates
from parkinglot.barrier import events, lanes
from parkinglot.billing import fees, payments, tariffs
from parkinglot.records import audit, permits, users, vehicles
from parkinglot.records.errors import Forbidden
from parkinglot.records.evidence import EvidenceStore
from parkinglot.records.models import Alert, Decision, LanePassage, ParkingSession, PlateRead

from .factories import T0, make_site
from .test_api_lanes import lanes as api_site, plate_event  # noqa: F401  (api_site: the lane API's fixture)

HOURLY = {
    "schema": 1, "currency": "EUR",
    "rates": {"std": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]}},
    "week": {"mon-sun": "std"},
    "free": {"minutes": 10, "mode": "threshold"},
    "exit_grace_min": 15,
}


@pytest.fixture
def world(db, session, tmp_path):
    site, entry, exit_ = make_site(session, duplicate_window_s=20)
    tariffs.create_version(session, site, code="std", name="Hourly", rules=HOURLY,
                           effective_from=T0 - timedelta(days=400), make_default=True)
    sup = users.create_user(session, username="sup", password="harbour-lantern-test-9", role="supervisor", sites=[site])
    att = users.create_user(session, username="att", password="harbour-lantern-test-9", role="attendant", sites=[site])
    session.commit()
    return {"site": site, "entry": entry, "exit": exit_, "store": EvidenceStore(tmp_path / "ev"), "sup": sup,
            "att": att}


_ids = itertools.count(1)


def send(session, w, lane, plate, received, *, captured=None, confidence=0.95, event_id=None, ticket=None,
         frames=(), digest_plate=None, window_s=events.DEFAULT_REPLAY_WINDOW_S):
    """One lane event: ``received`` is the server's clock, ``captured`` the controller's."""
    digest = events.request_digest(audit.plate_key(session), lane.id, plate=plate if digest_plate is None else digest_plate,
                                   frames=[f.data for f in frames], ticket=ticket)
    ev = events.LaneEvent(lane_id=lane.id, captured_at=captured or received, received_at=received,
                          reading=events.Reading(plate=plate, raw_text=plate, confidence=confidence, source="camera"),
                          event_id=event_id, ticket=ticket, frames=tuple(frames), request_digest=digest)
    out = events.process(session, w["store"], ev, replay_window_s=window_s)
    session.commit()
    return out


def alerts_of(session, kind=None):
    stmt = select(Alert).order_by(Alert.id)
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    return session.scalars(stmt).all()


# --- 1. the server's clock decides ----------------------------------------------------------

@pytest.mark.parametrize("late", [timedelta(minutes=1), timedelta(hours=5), timedelta(days=3), timedelta(days=6)])
def test_a_permit_past_its_end_does_not_open_whatever_the_controller_clock_says(session, world, late):
    w = world
    end = T0
    permits.create_permit(session, w["site"], number="P1", holder="Decorator", vehicles=["DK4410"],
                          valid_from=end - timedelta(days=30), valid_to=end)
    session.commit()
    out = send(session, w, w["entry"], "DK4410", end + late, captured=end - timedelta(hours=12))
    assert out.reply.decision == "attendant" and out.reply.reason == "permit_expired"
    read = session.scalar(select(PlateRead))
    assert read.captured_at == end - timedelta(hours=12) and read.received_at == end + late  # both recorded


@pytest.mark.parametrize("ahead_s,skew_s", [(60, 55), (240, 290), (7200, 299)])
def test_a_pass_not_yet_valid_stays_shut_when_the_controller_clock_runs_ahead(session, world, ahead_s, skew_s):
    w = world
    permits.create_visitor_pass(session, w["site"], plate="GV2020", valid_from=T0 + timedelta(seconds=ahead_s),
                                valid_to=T0 + timedelta(hours=8))
    session.commit()
    out = send(session, w, w["entry"], "GV2020", T0, captured=T0 + timedelta(seconds=skew_s))
    assert out.reply.decision == "attendant" and out.reply.reason == "visitor_pass_not_yet_valid"


def test_permit_hours_are_judged_at_receive_time(session, world):
    w = world  # Europe/Berlin; T0 is 09:00 local on a Monday
    permits.create_permit(session, w["site"], number="P2", holder="Day worker", vehicles=["HW1234"],
                          valid_from=T0 - timedelta(days=1), valid_to=T0 + timedelta(days=30),
                          hours=[{"days": "mon-fri", "from": "07:00", "to": "19:00"}])
    session.commit()
    evening = T0 + timedelta(hours=11)  # 20:00 local
    out = send(session, w, w["entry"], "HW1234", evening, captured=T0 + timedelta(hours=2))
    assert out.reply.decision == "attendant" and out.reply.reason == "permit_outside_hours"


@pytest.mark.parametrize("stayed,claimed", [(timedelta(hours=3), timedelta(minutes=5)),
                                            (timedelta(hours=26), timedelta(minutes=9)),
                                            (timedelta(minutes=95), timedelta(minutes=1))])
def test_the_exit_fee_counts_the_real_stay_not_the_controller_clock(session, world, stayed, claimed):
    w = world
    first = send(session, w, w["entry"], "FE7781", T0)
    out = send(session, w, w["exit"], "FE7781", T0 + stayed, captured=T0 + claimed)
    assert out.reply.decision == "deny" and out.reply.reason == "payment_required"
    stay = session.get(ParkingSession, first.reply.session_id)
    assert stay.status == "open"
    due = fees.fee_status(session, w["site"], stay, T0 + stayed).due_minor
    assert due > 0 and out.reply.fee_due == events.money(due, "EUR")


@pytest.mark.parametrize("before", [timedelta(seconds=1), timedelta(hours=1), timedelta(days=2)])
def test_an_exit_captured_before_its_entry_goes_to_an_attendant(session, world, before):
    w = world
    send(session, w, w["entry"], "BE5151", T0)
    out = send(session, w, w["exit"], "BE5151", T0 + timedelta(minutes=5), captured=T0 - before)
    assert out.reply.decision == "attendant" and out.reply.reason == "exit_before_entry"
    assert session.scalar(select(ParkingSession.status)) == "open"


def test_stays_are_timed_by_the_server_clock(session, world):
    w = world
    out = send(session, w, w["entry"], "ST4040", T0, captured=T0 - timedelta(days=2))
    assert session.get(ParkingSession, out.reply.session_id).entered_at == T0


# --- 2. an event id is bound to the request sent with it ---------------------------------------

def test_the_same_request_retried_gets_the_stored_reply_and_creates_nothing(session, world):
    w = world
    first = send(session, w, w["entry"], "RT1001", T0, event_id="e-1")
    for delay in (1, 30, 599):
        again = send(session, w, w["entry"], "RT1001", T0 + timedelta(seconds=delay), event_id="e-1")
        assert again.replayed and again.reply == first.reply
    assert session.scalar(select(func.count()).select_from(PlateRead)) == 1


def test_the_same_event_id_on_two_lanes_is_two_events(session, world):
    """Event ids are a controller's own, scoped to its lane: another lane's event under the same
    id is decided on its own, neither handed the first lane's reply nor refused as a reuse."""
    w = world
    came = send(session, w, w["entry"], "TL1001", T0, event_id="n-1")
    left = send(session, w, w["exit"], "TL1001", T0 + timedelta(minutes=5), event_id="n-1", ticket=came.reply.ticket)
    assert came.reply.decision == "open" and not left.replayed
    assert left.reply.decision == "open" and left.reply.read_id != came.reply.read_id
    assert session.get(ParkingSession, came.reply.session_id).status == "closed"
    assert session.scalar(select(func.count()).select_from(PlateRead).where(PlateRead.event_id == "n-1")) == 2
    assert not alerts_of(session, "event_id_reuse")


@pytest.mark.parametrize("change", ["plate", "ticket", "frame", "late"])
def test_a_different_request_under_a_used_event_id_is_refused_recorded_and_alerted(session, world, change):
    from parkinglot.barrier.events import Frame

    w = world
    frame_a, frame_b = Frame(b"\xff\xd8first-frame", "image/jpeg"), Frame(b"\xff\xd8second-frame", "image/jpeg")
    first = send(session, w, w["exit"] if change == "ticket" else w["entry"], "OK1234", T0, event_id="ctr-7",
                 frames=(frame_a,) if change == "frame" else ())
    assert first.reply.decision in ("open", "deny")
    lane = w["exit"] if change == "ticket" else w["entry"]
    kwargs = {
        "plate": dict(plate="NEW987"),
        "ticket": dict(plate="OK1234", ticket="T-OTHER"),
        "frame": dict(plate="OK1234", frames=(frame_b,)),
        "late": dict(plate="OK1234", received=T0 + timedelta(minutes=11)),
    }[change]
    received = kwargs.pop("received", T0 + timedelta(seconds=40))
    plate = kwargs.pop("plate")
    out = send(session, w, lane, plate, received, event_id="ctr-7", **kwargs)
    assert out.status == 409 and out.reply.decision == "attendant" and out.reply.reason == "event_id_reused"
    assert out.reply.session_id is None and not out.replayed
    read = session.get(PlateRead, out.reply.read_id)
    assert read.reused_event_id == "ctr-7" and read.event_id is None and read.plate == plate
    if change == "frame":
        assert read.evidence_sha256 is not None and read.evidence_sha256 != session.get(
            PlateRead, first.reply.read_id).evidence_sha256
    assert [a.kind for a in alerts_of(session, "event_id_reuse")] == ["event_id_reuse"]
    assert session.scalar(select(func.count()).select_from(ParkingSession)) <= 1


def test_a_reused_event_id_still_catches_a_hotlisted_car(session, world):
    w = world
    vehicles.add_to_hotlist(session, plate="HX9090", reason="stolen", site_id=w["site"].id)
    session.commit()
    send(session, w, w["entry"], "FIRST1", T0, event_id="n-1")
    out = send(session, w, w["entry"], "HX9090", T0 + timedelta(seconds=5), event_id="n-1")
    assert out.status == 409
    assert {a.kind for a in alerts_of(session)} == {"event_id_reuse", "hotlist"}


def test_a_paid_exit_retried_under_its_event_id_opens(session, world):
    """The event-id rule meets pay-on-exit: a stored payment_required is decided again."""
    w = world
    send(session, w, w["entry"], "PX3003", T0)
    refused = send(session, w, w["exit"], "PX3003", T0 + timedelta(hours=2), event_id="x-1")
    assert refused.reply.reason == "payment_required"
    same = send(session, w, w["exit"], "PX3003", T0 + timedelta(hours=2, seconds=20), event_id="x-1")
    assert same.reply.reason == "payment_required"  # nothing paid yet: still refused
    stay = session.get(ParkingSession, refused.reply.session_id)
    status = fees.fee_status(session, w["site"], stay, T0 + timedelta(hours=2, minutes=1))
    payments.record_payment(session, w["site"], amount_minor=status.due_minor, method="card", reference="term-1",
                            stay=stay, paid_until=status.paid_until)
    session.commit()
    opened = send(session, w, w["exit"], "PX3003", T0 + timedelta(hours=2, minutes=2), event_id="x-1")
    assert opened.reply.decision == "open" and opened.reply.session_id == stay.id
    read = session.get(PlateRead, opened.reply.read_id)
    assert read.retry_of_id == refused.reply.read_id and read.event_id is None
    again = send(session, w, w["exit"], "PX3003", T0 + timedelta(hours=2, minutes=3), event_id="x-1")
    assert again.replayed and again.reply == opened.reply  # the newest decision is what a retry gets


# --- 3. stop lists see look-alikes --------------------------------------------------------------

def lookalike_variants(plate: str) -> list[str]:
    """Reads a camera could make of ``plate``: confusable swaps, one character dropped or added."""
    out = set()
    for i, ch in enumerate(plate):
        for group in plates.CONFUSION_GROUPS:
            if ch in group:
                out.update(plate[:i] + other + plate[i + 1:] for other in group if other != ch)
    out.update(plate[:i] + plate[i + 1:] for i in range(len(plate)))
    out.update(plate[:i] + extra + plate[i:] for i in range(len(plate) + 1) for extra in "1X")
    if len(plate) >= 2:
        swapped = [plates.CONFUSION_GROUPS[0][1] if c == "0" else c for c in plate]
        out.add("".join(swapped))
    out.discard(plate)
    return sorted(v for v in out if 1 <= len(v) <= plates.MAX_PLATE_LEN)


@pytest.mark.parametrize("listed", ["KZ5108", "MB8S21Q", "QD0G6T"])
def test_every_lookalike_of_a_hotlisted_plate_is_stopped_at_entry(session, world, listed):
    w = world
    entry_ = vehicles.add_to_hotlist(session, plate=listed, reason="stolen", site_id=None)
    session.commit()
    variants = lookalike_variants(listed)
    assert len(variants) >= 10
    for n, read in enumerate(variants):
        out = send(session, w, w["entry"], read, T0 + timedelta(minutes=n))
        assert out.reply.decision != "open", read
        assert out.reply.reason == "hotlist_lookalike", read
        alert = session.scalars(select(Alert).where(Alert.read_id == out.reply.read_id)).one()
        assert alert.kind == "hotlist" and listed in alert.message and f"#{entry_.id}" in alert.message
    exact = send(session, w, w["entry"], listed, T0 + timedelta(hours=2))
    assert exact.reply.decision == "deny" and exact.reply.reason == "hotlisted"


@pytest.mark.parametrize("listed", ["LK7777", "WV2B4N"])
def test_lookalikes_of_locked_and_hotlisted_plates_never_leave(session, world, listed):
    w = world
    for n, read in enumerate(lookalike_variants(listed)[:12]):
        start = T0 + timedelta(hours=n)
        stay = send(session, w, w["entry"], read, start)
        assert stay.reply.decision == "open"
        lock = vehicles.lock_vehicle(session, site_id=w["site"].id, plate=listed, user_id=None, note="owner away")
        session.commit()
        out = send(session, w, w["exit"], read, start + timedelta(minutes=2))
        assert out.reply.decision == "attendant" and out.reply.reason == "lock_lookalike", read
        assert f"lock #{lock.id}" in session.scalars(select(Alert).where(Alert.read_id == out.reply.read_id)).one().message
        assert session.get(ParkingSession, stay.reply.session_id).status == "open"
        vehicles.release_lock(session, site_id=w["site"].id, plate=listed, user_id=None)
        hot = vehicles.add_to_hotlist(session, plate=listed, reason="wanted", site_id=w["site"].id)
        session.commit()
        out = send(session, w, w["exit"], read, start + timedelta(minutes=4))
        assert out.reply.decision == "attendant" and out.reply.reason == "hotlist_lookalike", read
        vehicles.remove_from_hotlist(session, hot, w["sup"].id)
        session.commit()
        out = send(session, w, w["exit"], read, start + timedelta(minutes=6))  # free again: leaves (free time)
        assert out.reply.decision == "open", read


def test_a_locked_vehicle_at_an_entry_goes_to_an_attendant(session, world):
    w = world
    vehicles.lock_vehicle(session, site_id=w["site"].id, plate="LE2468", user_id=None)
    session.commit()
    for read, reason in (("LE2468", "vehicle_locked"), ("LE246B", "lock_lookalike")):
        out = send(session, w, w["entry"], read, T0 + timedelta(minutes=len(read)))
        assert out.reply.decision == "attendant" and out.reply.reason == reason


def test_stop_lists_of_other_sites_and_removed_entries_do_not_stop(session, world):
    w = world
    other, _, _ = make_site(session, code="S2")
    vehicles.add_to_hotlist(session, plate="OS1357", reason="other site", site_id=other.id)
    vehicles.lock_vehicle(session, site_id=other.id, plate="OS1357", user_id=None)
    gone = vehicles.add_to_hotlist(session, plate="GN8642", reason="found", site_id=None)
    vehicles.remove_from_hotlist(session, gone, w["sup"].id)
    session.commit()
    for plate in ("OS1357", "0S1357", "GN8642", "GN864Z"):
        assert send(session, w, w["entry"], plate, T0 + timedelta(minutes=len(plate))).reply.decision == "open"


def test_a_plate_far_from_every_listed_one_is_not_stopped(session, world):
    w = world
    vehicles.add_to_hotlist(session, plate="AB1234", reason="stolen")
    session.commit()
    for n, plate in enumerate(("XY9876", "AB9999", "ZZ1234Q")):
        assert send(session, w, w["entry"], plate, T0 + timedelta(minutes=n)).reply.decision == "open"


def test_the_lane_state_shows_the_lookalike_hit(client, db):
    from .test_api_lanes import auth, plate_event
    from parkinglot.records import sites

    with db.sessions() as s:
        site, entry, _ = make_site(s, code="LC")
        key = sites.create_device(s, site, "ctl").key
        vehicles.add_to_hotlist(s, plate="CARD55", reason="stolen", site_id=site.id)
        s.commit()
        lane_code = entry.code
    body = plate_event(client, lane_code, key, plate="CAR055").get_json()
    assert body["decision"] == "attendant" and body["reason"] == "hotlist_lookalike"
    state = client.get(f"/api/v1/lanes/{lane_code}", headers=auth(key)).get_json()
    assert state["last_decision"]["reason"] == "hotlist_lookalike"


# --- 4. confirm-match never releases a stopped vehicle -------------------------------------------

@pytest.mark.parametrize("stop", ["lock", "hotlist", "hotlist_lookalike"])
def test_confirm_match_refuses_a_stopped_vehicle_and_only_a_supervisor_overrides(session, world, stop):
    w = world
    out = send(session, w, w["entry"], "CM4321", T0)
    stay_id = out.reply.session_id
    if stop == "lock":
        vehicles.lock_vehicle(session, site_id=w["site"].id, plate="CM4321", user_id=w["att"].id)
    else:
        vehicles.add_to_hotlist(session, plate="CM4321" if stop == "hotlist" else "CM432I", reason="stolen")
    session.commit()
    with pytest.raises(lanes.StoppedVehicle) as refused:
        lanes.confirm_match(session, w["exit"], w["att"], stay_id, "looks like the same car")
    assert refused.value.status == 409
    session.rollback()
    assert session.get(ParkingSession, stay_id).status == "open"
    with pytest.raises(Forbidden):
        lanes.confirm_match(session, w["exit"], w["att"], stay_id, "I am sure", override_stop=True)
    session.rollback()
    assert session.get(ParkingSession, stay_id).status == "open"
    result = lanes.confirm_match(session, w["exit"], w["sup"], stay_id, "owner present with ID", override_stop=True)
    session.commit()
    assert result.decision.outcome == "open" and session.get(ParkingSession, stay_id).status == "closed"
    assert [a.kind for a in alerts_of(session, "stop_override")] == ["stop_override"]
    assert "stay.stop_overridden" in [e.action for e in audit.history(session, "stay", stay_id)]


@pytest.mark.parametrize("stop", ["lock", "hotlist", "hotlist_lookalike"])
def test_a_manual_exit_naming_a_stopped_car_is_refused_and_only_a_supervisor_overrides(session, world, stop):
    """Opening an exit by hand and naming the car is the other way an attendant lets a stay out:
    the same stop-list rule as confirm-match holds there."""
    w = world
    stay_id = send(session, w, w["entry"], "MX8642", T0).reply.session_id
    if stop == "lock":
        vehicles.lock_vehicle(session, site_id=w["site"].id, plate="MX8642", user_id=w["att"].id)
    else:
        vehicles.add_to_hotlist(session, plate="MX8642" if stop == "hotlist" else "MX864Z", reason="stolen")
    session.commit()
    with pytest.raises(lanes.StoppedVehicle) as refused:
        lanes.open_by_hand(session, w["exit"], w["att"], "ticket machine jammed", plate="MX8642")
    assert refused.value.status == 409
    session.rollback()
    assert session.get(ParkingSession, stay_id).status == "open"
    with pytest.raises(Forbidden):
        lanes.open_by_hand(session, w["exit"], w["att"], "I am sure", plate="MX8642", override_stop=True)
    session.rollback()
    assert session.get(ParkingSession, stay_id).status == "open"
    result = lanes.open_by_hand(session, w["exit"], w["sup"], "owner present with ID", plate="MX8642",
                                override_stop=True)
    session.commit()
    assert result.decision.outcome == "open" and session.get(ParkingSession, stay_id).status == "closed"
    assert [a.kind for a in alerts_of(session, "stop_override")] == ["stop_override"]
    assert "stay.stop_overridden" in [e.action for e in audit.history(session, "stay", stay_id)]


def test_confirm_match_of_a_free_vehicle_still_works(session, world):
    w = world
    stay_id = send(session, w, w["entry"], "FR2468", T0).reply.session_id
    lanes.confirm_match(session, w["exit"], w["att"], stay_id, "plate is dirty")
    session.commit()
    assert session.get(ParkingSession, stay_id).status == "closed"


# --- 5. a lapsed credential is not forgotten, and the site decides who else may enter ----------

@pytest.mark.parametrize("ago_days", [2, 10, 45, 89])
def test_an_expired_or_revoked_pass_goes_to_an_attendant_for_the_lapse_period(session, world, ago_days):
    w = world
    ended = T0 - timedelta(days=ago_days)
    permits.create_visitor_pass(session, w["site"], plate="VP1111", valid_from=ended - timedelta(days=3),
                                valid_to=ended)
    revoked = permits.create_visitor_pass(session, w["site"], plate="VP2222", valid_from=ended - timedelta(days=2),
                                          valid_to=ended + timedelta(days=1))
    revoked.revoked_at = ended  # revoked on the day, by hand
    session.commit()
    out = send(session, w, w["entry"], "VP1111", T0)
    assert out.reply.decision == "attendant" and out.reply.reason == "visitor_pass_expired"
    assert ended.date().isoformat() in out.reply.message_for_display
    out = send(session, w, w["entry"], "VP2222", T0 + timedelta(minutes=1))
    assert out.reply.decision == "attendant" and out.reply.reason == "visitor_pass_revoked"


@pytest.mark.parametrize("ago_days", [31, 60, 89])
def test_an_expired_cancelled_or_withdrawn_permit_goes_to_an_attendant(session, world, ago_days):
    w = world
    site = w["site"]
    lapse = T0 - timedelta(days=ago_days)
    permits.create_permit(session, site, number="E1", holder="Expired", vehicles=["PE1001"],
                          valid_from=lapse - timedelta(days=365), valid_to=lapse)
    permits.create_permit(session, site, number="C1", holder="Cancelled", vehicles=["PC2002", "PW3003"],
                          valid_from=lapse - timedelta(days=30), valid_to=T0 + timedelta(days=300))
    session.commit()
    permits.revise_permit(session, site, "C1", user_id=w["sup"].id, vehicles=["PC2002"])  # PW3003 taken off
    permits.revise_permit(session, site, "C1", user_id=w["sup"].id, action="cancelled", status="cancelled")
    session.commit()
    for n, (plate, reason) in enumerate((("PE1001", "permit_expired"), ("PC2002", "permit_expired"),
                                         ("PW3003", "permit_revoked"))):
        out = send(session, w, w["entry"], plate, T0 + timedelta(minutes=n))
        assert out.reply.decision == "attendant" and out.reply.reason == reason, plate


def test_after_the_lapse_period_the_plate_is_an_ordinary_visitor_again(session, world):
    w = world
    w["site"].lapsed_credential_days = 30
    permits.create_visitor_pass(session, w["site"], plate="OLD777", valid_from=T0 - timedelta(days=40),
                                valid_to=T0 - timedelta(days=31))
    session.commit()
    assert send(session, w, w["entry"], "OLD777", T0).reply.reason == "visitor"


@pytest.mark.parametrize("kind,visitors,expected", [
    ("public", None, ("open", "visitor")),
    ("residential", None, ("attendant", "visitor_needs_attendant")),
    ("private", None, ("deny", "visitors_not_admitted")),
    ("residential", "open", ("open", "visitor")),
    ("public", "refuse", ("deny", "visitors_not_admitted")),
])
def test_the_site_decides_whether_unknown_vehicles_enter(db, session, tmp_path, kind, visitors, expected):
    site, entry, _ = make_site(session, code="K1", kind=kind, visitors=visitors)
    permits.create_permit(session, site, number="R1", holder="Resident", vehicles=["RS1234"],
                          valid_from=T0 - timedelta(days=1), valid_to=T0 + timedelta(days=1))
    session.commit()
    w = {"store": EvidenceStore(tmp_path / "ev")}
    out = send(session, w, entry, "UN5678", T0)
    assert (out.reply.decision, out.reply.reason) == expected
    assert send(session, w, entry, "RS1234", T0).reply.decision == "open"  # a resident always enters


def test_a_lapsed_credential_goes_to_an_attendant_even_where_visitors_are_refused(db, session, tmp_path):
    site, entry, _ = make_site(session, code="K2", kind="private")
    permits.create_permit(session, site, number="X1", holder="Former tenant", vehicles=["FT1234"],
                          valid_from=T0 - timedelta(days=100), valid_to=T0 - timedelta(days=3))
    session.commit()
    out = send(session, {"store": EvidenceStore(tmp_path / "ev")}, entry, "FT1234", T0)
    assert out.reply.decision == "attendant" and out.reply.reason == "permit_expired"


# --- 6. a repeat read is decided again -------------------------------------------------------------

def test_a_repeat_read_of_a_car_still_at_the_barrier_gets_the_same_open(session, world):
    w = world
    first = send(session, w, w["entry"], "RP1000", T0)
    again = send(session, w, w["entry"], "RP1000", T0 + timedelta(seconds=5))
    assert again.reply.decision == "open" and again.reply.session_id == first.reply.session_id
    assert session.get(PlateRead, again.reply.read_id).duplicate_of_id == first.reply.read_id


@pytest.mark.parametrize("received_s, captured_s, duplicate", [
    (5, 5 + 180, True),    # the controller's clock 3 minutes fast: still the car at the barrier
    (5, 5 - 600, True),    # 10 minutes slow: the same
    (60, 2, False),        # a minute later by the server's clock (window 20 s), whatever the controller says
])
def test_the_duplicate_window_runs_on_the_server_clock(session, world, received_s, captured_s, duplicate):
    w = world
    first = send(session, w, w["entry"], "DW3000", T0)
    again = send(session, w, w["entry"], "DW3000", T0 + timedelta(seconds=received_s),
                 captured=T0 + timedelta(seconds=captured_s))
    assert (session.get(PlateRead, again.reply.read_id).duplicate_of_id == first.reply.read_id) is duplicate
    assert (again.reply.decision == "open") is duplicate  # afresh, it is a car already inside


@pytest.mark.parametrize("change", ["passage", "hotlisted", "stay_closed"])
def test_a_repeat_entry_read_is_not_given_the_open_once_things_changed(session, world, change):
    w = world
    first = send(session, w, w["entry"], "RE2000", T0)
    if change == "passage":
        lanes.record_passage(session, w["entry"], first.reply.decision_id, device_id=None,
                             passed_at=T0 + timedelta(seconds=3), reported_at=None)
    elif change == "hotlisted":
        vehicles.add_to_hotlist(session, plate="RE2000", reason="reported stolen a moment ago")
    else:
        stay = session.get(ParkingSession, first.reply.session_id)
        from parkinglot.records import stays

        stays.close_stay(session, stay, exited_at=T0 + timedelta(seconds=4), reason="exit")
    session.commit()
    again = send(session, w, w["entry"], "RE2000", T0 + timedelta(seconds=8))
    expected = {"passage": ("deny", "already_inside"), "hotlisted": ("deny", "hotlisted"),
                "stay_closed": ("open", "visitor")}[change]
    assert (again.reply.decision, again.reply.reason) == expected
    if change == "stay_closed":  # a fresh stay, not the closed one
        assert again.reply.session_id != first.reply.session_id


@pytest.mark.parametrize("change", ["passage", "locked"])
def test_a_repeat_exit_read_after_the_car_passed_is_another_car(session, world, change):
    """A cloned-plate convoy: the second car with the same plate is not waved through."""
    w = world
    send(session, w, w["entry"], "CV3000", T0)
    out = send(session, w, w["exit"], "CV3000", T0 + timedelta(minutes=5))
    assert out.reply.decision == "open"
    if change == "passage":
        lanes.record_passage(session, w["exit"], out.reply.decision_id, device_id=None,
                             passed_at=T0 + timedelta(minutes=5, seconds=4), reported_at=None)
    else:
        vehicles.lock_vehicle(session, site_id=w["site"].id, plate="CV3000", user_id=None)
    session.commit()
    again = send(session, w, w["exit"], "CV3000", T0 + timedelta(minutes=5, seconds=9))
    assert again.reply.decision == "deny"
    assert again.reply.reason == ("no_entry" if change == "passage" else "vehicle_locked")


@pytest.mark.parametrize("direction, refused_for", [("exit", "no_entry"), ("entry", "already_inside")])
def test_an_emergency_open_is_not_repeated_after_the_emergency(session, world, direction, refused_for):
    # at the entry the emergency open started a stay, which a repeat read still finds open:
    # only the emergency's end tells the repeat apart from the car still at the barrier
    w = world
    lanes.set_emergency(session, w["site"], True, w["sup"], "fire alarm")
    session.commit()
    assert send(session, w, w[direction], "EM4000", T0).reply.reason == "emergency_mode"
    lanes.set_emergency(session, w["site"], False, w["sup"], "all clear")
    session.commit()
    again = send(session, w, w[direction], "EM4000", T0 + timedelta(seconds=6))
    assert again.reply.decision == "deny" and again.reply.reason == refused_for


def test_passages_are_recorded_once_and_only_for_opens_of_the_lane(session, world):
    from parkinglot.records.errors import Conflict, NotFound

    w = world
    opened = send(session, w, w["entry"], "PS5000", T0)
    first = lanes.record_passage(session, w["entry"], opened.reply.decision_id, device_id=None, passed_at=T0,
                                 reported_at=None)
    again = lanes.record_passage(session, w["entry"], opened.reply.decision_id, device_id=None, passed_at=T0,
                                 reported_at=None)
    assert first.created and not again.created and again.passage.id == first.passage.id
    with pytest.raises(NotFound):
        lanes.record_passage(session, w["exit"], opened.reply.decision_id, device_id=None, passed_at=T0,
                             reported_at=None)
    refused = send(session, w, w["exit"], "NOPE11", T0 + timedelta(minutes=1))
    with pytest.raises(Conflict):
        lanes.record_passage(session, w["exit"], refused.reply.decision_id, device_id=None, passed_at=T0,
                             reported_at=None)
    session.commit()
    assert session.scalar(select(func.count()).select_from(LanePassage)) == 1


# --- 9. a read that is not a plate does not open ---------------------------------------------------

@pytest.mark.parametrize("regions,plate,confidence,expected", [
    (["us"], "N0RTH", 0.66, ("attendant", "free_format_low_confidence")),
    (["us"], "N0RTH", 0.93, ("open", "visitor")),  # a vanity plate read with confidence
    (["us"], "ABC1234", 0.66, ("open", "visitor")),
    (["us"], "ABCDE12345", 0.99, ("attendant", "plate_format_unknown")),
    (["br"], "AB123CD", 0.95, ("attendant", "plate_format_unknown")),
    (["br"], "ABC1D23", 0.95, ("open", "visitor")),
    (["eu", "br"], "ABC1234", 0.95, ("open", "visitor")),
    (["eu", "br"], "B12", 0.95, ("attendant", "plate_format_unknown")),
])
def test_an_unknown_vehicle_is_admitted_only_on_a_read_that_fits_the_site_regions(
        db, session, tmp_path, regions, plate, confidence, expected):
    site, entry, _ = make_site(session, code="FMT", plate_region=None, plate_regions=regions)
    session.commit()
    out = send(session, {"store": EvidenceStore(tmp_path / "ev")}, entry, plate, T0, confidence=confidence)
    assert (out.reply.decision, out.reply.reason) == expected


def test_a_credential_holder_with_an_unusual_plate_still_enters(db, session, tmp_path):
    site, entry, _ = make_site(session, code="FM2", plate_region=None, plate_regions=["br"])
    permits.create_permit(session, site, number="D1", holder="Diplomat", vehicles=["CD1234"],
                          valid_from=T0 - timedelta(days=1), valid_to=T0 + timedelta(days=1))
    session.commit()
    out = send(session, {"store": EvidenceStore(tmp_path / "ev")}, entry, "CD1234", T0)
    assert out.reply.decision == "open" and out.reply.reason == "permit_valid"


# --- every lane decision of this file left a verifiable trail ---------------------------------------

def test_the_audit_trail_of_the_gate_is_intact(session, world):
    w = world
    send(session, w, w["entry"], "AU1000", T0, event_id="a1")
    send(session, w, w["entry"], "AU2000", T0 + timedelta(seconds=1), event_id="a1")
    assert audit.verify(session).ok
    assert session.scalar(select(func.count()).select_from(Decision)) == 2


# --- the lane API: 409s, passages, error bodies (7), ASCII plates (8) -----------------------------

@pytest.fixture
def api(api_site):
    """The lane API's own test site (``tests/test_api_lanes.py``): an entry, an exit and a key."""
    return api_site


def test_the_api_answers_409_to_a_used_event_id_and_records_the_new_car(client, api, db):
    first = plate_event(client, api["entry"], api["key"], plate="AP1000", confidence=0.95, event_id="k-1")
    assert first.status_code == 200 and first.get_json()["decision"] == "open"
    again = plate_event(client, api["entry"], api["key"], plate="AP1000", confidence=0.95, event_id="k-1")
    assert again.status_code == 200 and again.get_json() == first.get_json()
    other = plate_event(client, api["entry"], api["key"], plate="AP2000", confidence=0.95, event_id="k-1")
    body = other.get_json()
    assert other.status_code == 409 and body["decision"] == "attendant" and body["reason"] == "event_id_reused"
    assert body["error"]["code"] == "event_id_reused" and body["plate"] == "AP2000"
    with db.sessions() as s:
        assert s.scalar(select(PlateRead.reused_event_id).where(PlateRead.plate == "AP2000")) == "k-1"


def test_a_frame_event_under_a_used_id_with_another_photo_is_refused(client, api, db, fake_pipeline):
    import io

    from .test_api_lanes import jpeg

    def frames(seed):
        return {"event_id": "f-9", "frame": [(io.BytesIO(jpeg(seed=seed)), "f.jpg", "image/jpeg")]}

    headers = {"Authorization": f"Bearer {api['key']}"}
    url = f"/api/v1/lanes/{api['entry']}/events"
    assert client.post(url, data=frames(1), headers=headers, content_type="multipart/form-data").status_code == 200
    same = client.post(url, data=frames(1), headers=headers, content_type="multipart/form-data")
    assert same.status_code == 200 and fake_pipeline.calls == 1  # a retry is not recognised again
    other = client.post(url, data=frames(2), headers=headers, content_type="multipart/form-data")
    assert other.status_code == 409 and other.get_json()["decision"] == "attendant"
    with db.sessions() as s:
        shas = s.scalars(select(PlateRead.evidence_sha256).order_by(PlateRead.id)).all()
        assert len(shas) == 2 and shas[0] != shas[1]  # the second car's photo is kept


def test_a_controller_reports_passages(client, api):
    opened = plate_event(client, api["entry"], api["key"], plate="PA5000", confidence=0.95).get_json()
    url = f"/api/v1/lanes/{api['entry']}/passages"
    headers = {"Authorization": f"Bearer {api['key']}"}
    r = client.post(url, json={"decision_id": opened["decision_id"]}, headers=headers)
    assert r.status_code == 201 and r.get_json()["recorded"] is True
    assert client.post(url, json={"decision_id": opened["decision_id"]}, headers=headers).status_code == 200
    again = plate_event(client, api["entry"], api["key"], plate="PA5000", confidence=0.95).get_json()
    assert again["decision"] == "deny" and again["reason"] == "already_inside"
    for bad in ({"decision_id": True}, {"decision_id": "1"}, {}, {"decision_id": 999999}):
        r = client.post(url, json=bad, headers=headers)
        assert r.status_code in (404, 422) and r.get_json()["decision"] in ("deny", "attendant"), bad


def _lane_error(resp, status):
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["decision"] in ("deny", "attendant") and body["error"]["code"] and body["message_for_display"]
    return body


def test_every_error_of_a_lane_endpoint_carries_a_decision(client, api, app):
    url = f"/api/v1/lanes/{api['entry']}/events"
    headers = {"Authorization": f"Bearer {api['key']}"}
    limit = app.config["MAX_CONTENT_LENGTH"]
    _lane_error(client.post(url, data=b"x" * (limit + 1), headers={**headers, "Content-Type": "application/json"}),
                413)
    _lane_error(client.get(url, headers=headers), 405)
    _lane_error(client.put(url, headers=headers), 405)
    deep = "[" * 5000 + "]" * 5000
    _lane_error(client.post(url, data='{"plate": "AB123", "x": ' + deep + "}", headers={
        **headers, "Content-Type": "application/json"}), 400)
    for when in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-13-01T00:00:00Z", "x" * 5000):
        _lane_error(plate_event(client, api["entry"], api["key"], plate="AB123", confidence=0.9, captured_at=when), 422)
    _lane_error(client.post(url, data="{", headers={**headers, "Content-Type": "application/json"}), 400)
    _lane_error(plate_event(client, "NO-SUCH-LANE", api["key"], plate="AB123", confidence=0.9), 404)
    _lane_error(plate_event(client, api["entry"], "pl_000000000000_wrong", plate="AB123", confidence=0.9), 401)


def test_a_refused_plate_is_not_echoed_back_in_full(client, api):
    body = _lane_error(plate_event(client, api["entry"], api["key"], plate="X" * 1_000_000, confidence=0.9), 422)
    assert len(body["error"]["message"]) < 200


@pytest.mark.parametrize("plate", ["STRAßE1", "ıSTANB1", "ſ12345", "ﬁ12345", "ＡＢ123", "AB12３", "ÄB123", "AB\u0130"])
def test_plates_are_ascii_only(client, api, plate):
    body = _lane_error(plate_event(client, api["entry"], api["key"], plate=plate, confidence=0.95), 422)
    assert "illegal characters" in body["error"]["message"]


@pytest.mark.parametrize("confidence", [True, False, None, "high", [0.9], {"v": 0.9}, 1.5, -0.1])
@pytest.mark.parametrize("plate", ["AB123", ""])
def test_confidence_must_be_a_number(client, api, confidence, plate):
    # an empty read ("no plate seen") is no excuse for a malformed confidence: the document requires it
    _lane_error(plate_event(client, api["entry"], api["key"], plate=plate, confidence=confidence), 422)


def test_an_empty_read_with_a_valid_confidence_goes_to_an_attendant(client, api):
    r = plate_event(client, api["entry"], api["key"], plate="", confidence=0.0)
    assert r.status_code == 200 and r.get_json()["decision"] == "attendant"


def test_the_stay_page_shows_the_stop_and_refuses_a_confirmation(client, db, app):
    from .console_world import build, csrf, login

    w = build(db, app)
    with db.sessions() as s:
        stay = s.get(ParkingSession, w.open_stay)
        vehicles.lock_vehicle(s, site_id=stay.site_id, plate=stay.plate, user_id=None, note="owner abroad")
        s.commit()
    login(client, "attendant")
    page = client.get(f"/stays/{w.open_stay}").text
    assert "stop-banner" in page and "Locked" in page and "owner abroad" in page
    assert "override_stop" not in page  # attendants are not offered the override
    r = client.post(f"/stays/{w.open_stay}/confirm", data={"lane": w.exit, "reason": "same car",
                                                           "csrf_token": csrf(client)})
    assert r.status_code == 303
    assert "Not confirmed" in client.get(f"/stays/{w.open_stay}").text
    with db.sessions() as s:
        assert s.get(ParkingSession, w.open_stay).status == "open"


def test_frames_are_read_with_every_region_of_the_site(client, db, fake_pipeline):
    import io

    from parkinglot.records import sites

    from .test_api_lanes import jpeg

    with db.sessions() as s:
        site, entry, _ = make_site(s, code="RG", plate_region=None, plate_regions=["br", "us"])
        key = sites.create_device(s, site, "ctl").key
        s.commit()
    headers = {"Authorization": f"Bearer {key}"}
    r = client.post(f"/api/v1/lanes/{entry.code}/events", headers=headers, content_type="multipart/form-data",
                    data={"frame": [(io.BytesIO(jpeg(seed=3)), "f.jpg", "image/jpeg")]})
    assert r.status_code == 200 and fake_pipeline.regions == ("br", "us")
    r = client.post("/api/v1/recognize", headers=headers, content_type="multipart/form-data",
                    data={"frame": [(io.BytesIO(jpeg(seed=3)), "f.jpg", "image/jpeg")]})
    assert r.status_code == 200 and fake_pipeline.regions == ("br", "us") and r.get_json()["region"] == "br"
