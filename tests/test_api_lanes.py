"""The lane controller API: decisions, idempotency, and every kind of bad input."""
import io
import json
import threading
from datetime import timedelta

import cv2
import numpy as np
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select

from parkinglot.records import audit, sites, vehicles
from parkinglot.records.models import BarrierCommand, Decision, Evidence, ParkingSession, PlateRead
from parkinglot.records.types import utcnow
from parkinglot.web.openapi import SPEC

from .conftest import postgresql_only
from .factories import make_site


@pytest.fixture
def lanes(db):
    with db.sessions() as s:
        site, entry, exit_ = make_site(s, code="HQ", anti_passback="deny", min_confidence=0.6)
        other, o_entry, _ = make_site(s, code="XX")
        key = sites.create_device(s, site, "hq-controller").key
        other_key = sites.create_device(s, other, "xx-controller").key
        revoked = sites.create_device(s, site, "old")
        sites.revoke_device(s, revoked.device)
        s.commit()
    return {"entry": entry.code, "exit": exit_.code, "other_lane": o_entry.code, "key": key,
            "other_key": other_key, "revoked_key": revoked.key}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def jpeg(w=64, h=48, seed=0) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def validate(schema_name, body):
    schema = {**SPEC["components"]["schemas"][schema_name], "$defs": {}}
    Draft202012Validator(schema).validate(body)


def plate_event(client, lane, key, plate="AB123", **extra):
    body = {"plate": plate, "confidence": extra.pop("confidence", 0.95), **extra}
    return client.post(f"/api/v1/lanes/{lane}/events", json=body, headers=auth(key))


def frame_event(client, lane, key, frames, **fields):
    data = {**fields, "frame": [(io.BytesIO(f), f"f{i}.jpg", "image/jpeg") for i, f in enumerate(frames)]}
    return client.post(f"/api/v1/lanes/{lane}/events", data=data, headers=auth(key),
                       content_type="multipart/form-data")


def count(db, model):
    with db.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_entry_then_exit_with_plate_strings(client, lanes, db):
    r = plate_event(client, lanes["entry"], lanes["key"], event_id="e1")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    validate("EventReply", body)
    assert body["decision"] == "open" and body["reason"] == "visitor" and body["session_id"]
    assert body["ticket"]
    r = plate_event(client, lanes["exit"], lanes["key"], event_id="x1")
    body = r.get_json()
    validate("EventReply", body)
    assert body["decision"] == "open" and body["reason"] == "exact_plate" and body["fee_due"] is None
    with db.sessions() as s:
        stay = s.get(ParkingSession, body["session_id"])
        assert stay.status == "closed" and stay.exit_read_id is not None
        assert audit.verify(s).ok


def test_frames_are_recognised_and_stored_as_evidence(client, lanes, db, fake_pipeline):
    r = frame_event(client, lanes["entry"], lanes["key"], [jpeg(seed=1), jpeg(seed=2)], event_id="f1",
                    captured_at=utcnow().isoformat())
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["plate"] == "AB123" and fake_pipeline.calls == 1
    with db.sessions() as s:
        read = s.scalar(select(PlateRead))
        assert read.evidence_sha256 and len(read.frames) == 2 and read.box is not None
        assert s.scalar(select(func.count()).select_from(Evidence)) == 2


def test_retry_with_same_event_id_returns_same_reply_and_creates_nothing(client, lanes, db):
    first = plate_event(client, lanes["entry"], lanes["key"], event_id="same").get_json()
    before = (count(db, PlateRead), count(db, Decision), count(db, ParkingSession))
    for _ in range(3):
        again = plate_event(client, lanes["entry"], lanes["key"], event_id="same").get_json()
        assert again == first
    assert (count(db, PlateRead), count(db, Decision), count(db, ParkingSession)) == before


def test_burst_of_concurrent_duplicate_retries(app, lanes, db):
    """Ten controllers' retries of one event race: one record, ten identical replies."""
    replies, errors = [], []
    start = threading.Barrier(10)

    def send():
        try:
            start.wait(timeout=10)
            with app.test_client() as c:
                replies.append(plate_event(c, lanes["entry"], lanes["key"], event_id="burst").get_json())
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(10)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert all(r == replies[0] for r in replies) and replies[0]["decision"] == "open"
    assert count(db, PlateRead) == 1 and count(db, Decision) == 1 and count(db, ParkingSession) == 1


def test_duplicate_read_of_an_admitted_car_replays_open(client, lanes, db):
    a = plate_event(client, lanes["entry"], lanes["key"], event_id="d1").get_json()
    b = plate_event(client, lanes["entry"], lanes["key"], event_id="d2").get_json()
    assert a["decision"] == b["decision"] == "open" and a["session_id"] == b["session_id"]
    assert count(db, ParkingSession) == 1 and count(db, PlateRead) == 2 and count(db, Decision) == 2


def test_exit_without_entry_is_denied_with_theft_alert(client, lanes, db):
    body = plate_event(client, lanes["exit"], lanes["key"], plate="ZZ999").get_json()
    assert body["decision"] == "deny" and body["reason"] == "no_entry"
    from parkinglot.records.models import Alert

    with db.sessions() as s:
        assert s.scalar(select(Alert.kind)) == "no_entry"


def test_hotlisted_entry_is_denied(client, lanes, db):
    with db.sessions() as s:
        vehicles.add_to_hotlist(s, plate="HOT1", reason="stolen")
        s.commit()
    assert plate_event(client, lanes["entry"], lanes["key"], plate="HOT1").get_json()["decision"] == "deny"


def test_low_confidence_goes_to_attendant(client, lanes):
    assert plate_event(client, lanes["entry"], lanes["key"], confidence=0.2).get_json()["decision"] == "attendant"


def test_open_decision_queues_a_barrier_command(app, client, lanes, db):
    plate_event(client, lanes["entry"], lanes["key"])
    app.extensions["parkinglot_dispatcher"].drain()
    with db.sessions() as s:
        cmd = s.scalar(select(BarrierCommand))
        assert cmd.status == "done"


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("header,status,code", [
    ({}, 401, "unauthorized"),
    ({"Authorization": "Bearer pl_000000000000_nope"}, 401, "unauthorized"),
    ({"Authorization": "Basic xyz"}, 401, "unauthorized"),
])
def test_missing_or_bad_key(client, lanes, header, status, code):
    r = client.post(f"/api/v1/lanes/{lanes['entry']}/events", json={"plate": "AB1", "confidence": 1}, headers=header)
    assert r.status_code == status
    body = r.get_json()
    validate("Error", body)
    assert body["error"]["code"] == code and body["decision"] == "deny"


def test_revoked_key_is_refused(client, lanes):
    assert plate_event(client, lanes["entry"], lanes["revoked_key"]).status_code == 401


def test_another_sites_lane_is_forbidden(client, lanes, db):
    r = plate_event(client, lanes["other_lane"], lanes["key"])
    assert r.status_code == 403 and r.get_json()["decision"] == "deny"
    assert count(db, PlateRead) == 0


def test_a_key_bound_to_a_lane_is_refused_on_another(client, lanes, db):
    """Most controllers serve one lane: a key bound to it (``devices add --lane``) is refused elsewhere."""
    with db.sessions() as s:
        lane = sites.get_lane(s, lanes["entry"])
        bound = sites.create_device(s, lane.site, "entry-only", lane=lane).key
        s.commit()
    r = plate_event(client, lanes["exit"], bound, event_id="b1")
    assert r.status_code == 403 and r.get_json()["decision"] == "deny"
    assert "bound to another lane" in r.get_json()["error"]["message"]
    assert client.get(f"/api/v1/lanes/{lanes['exit']}", headers=auth(bound)).status_code == 403
    assert count(db, PlateRead) == 0
    assert plate_event(client, lanes["entry"], bound, event_id="b2").get_json()["decision"] == "open"


def test_unknown_lane(client, lanes):
    r = plate_event(client, "NOPE", lanes["key"])
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_key_brute_force_is_throttled(app, client, lanes):
    app.config["API_KEY_MAX_FAILURES"] = 3
    for _ in range(3):
        client.post(f"/api/v1/lanes/{lanes['entry']}/events", json={}, headers=auth("pl_aaaaaaaaaaaa_x"))
    r = plate_event(client, lanes["entry"], "pl_aaaaaaaaaaaa_y")
    assert r.status_code == 429


def test_wrong_content_type(client, lanes):
    r = client.post(f"/api/v1/lanes/{lanes['entry']}/events", data="plate=AB1", headers=auth(lanes["key"]),
                    content_type="text/plain")
    assert r.status_code == 415 and r.get_json()["decision"] == "attendant"


def test_malformed_json(client, lanes):
    r = client.post(f"/api/v1/lanes/{lanes['entry']}/events", data="{not json", headers=auth(lanes["key"]),
                    content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "malformed_json"


def test_illegal_plate_characters(client, lanes):
    r = plate_event(client, lanes["entry"], lanes["key"], plate="AB<1>")
    assert r.status_code == 422 and "illegal" in r.get_json()["error"]["message"]


def test_corrupt_image_is_refused_and_nothing_is_stored(client, lanes, db):
    bad = jpeg()[:200]
    r = frame_event(client, lanes["entry"], lanes["key"], [bad])
    assert r.status_code == 422 and r.get_json()["error"]["code"] in ("corrupt_image",)
    assert r.get_json()["decision"] == "attendant"
    assert count(db, PlateRead) == 0 and count(db, Evidence) == 0


def test_not_an_image(client, lanes):
    r = frame_event(client, lanes["entry"], lanes["key"], [b"GIF89a" + b"0" * 100])
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "not_an_image"


def test_decompression_bomb_is_refused_before_decoding(client, lanes):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    r = frame_event(client, lanes["entry"], lanes["key"], [bomb])
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "image_too_large"


def test_too_many_frames(client, lanes):
    r = frame_event(client, lanes["entry"], lanes["key"], [jpeg(seed=i) for i in range(6)])
    assert r.status_code == 422 and "at most 5 frames" in r.get_json()["error"]["message"]


def test_oversized_body(app, client, lanes):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    r = frame_event(client, lanes["entry"], lanes["key"], [jpeg(400, 300)])
    assert r.status_code == 413
    validate("Error", r.get_json())


def test_capture_time_far_in_future(client, lanes, db):
    future = (utcnow() + timedelta(hours=2)).isoformat()
    r = plate_event(client, lanes["entry"], lanes["key"], captured_at=future)
    assert r.status_code == 422 and "future" in r.get_json()["error"]["message"]
    naive = plate_event(client, lanes["entry"], lanes["key"], captured_at="2026-01-01T10:00:00")
    assert naive.status_code == 422
    assert count(db, PlateRead) == 0


def test_two_exits_racing_for_one_session(app, lanes, db, client):
    plate_event(client, lanes["entry"], lanes["key"], plate="RACE1", event_id="in")
    start = threading.Barrier(2)
    replies, errors = [], []

    def leave(n):
        try:
            start.wait(timeout=10)
            with app.test_client() as c:
                r = plate_event(c, lanes["exit"], lanes["key"], plate="RACE1", event_id=f"out{n}")
                replies.append((r.status_code, r.get_json()))
        except BaseException as exc:  # noqa: BLE001 - a thread's failure must fail the test, not vanish
            errors.append(exc)

    threads = [threading.Thread(target=leave, args=(n,)) for n in range(2)]
    [t.start() for t in threads]
    [t.join(timeout=60) for t in threads]
    assert not errors, errors
    assert len(replies) == 2 and all(status == 200 for status, _ in replies), replies
    bodies = [body for _, body in replies]
    decisions = sorted(body["decision"] for body in bodies)
    # the second is either a duplicate read of the same car (replayed open) or refused; never a second close
    assert decisions.count("open") >= 1 and set(decisions) <= {"open", "deny", "attendant"}, bodies
    stay_id = next(body["session_id"] for body in bodies if body["decision"] == "open")
    with db.sessions() as s:
        closes = [e for e in audit.history(s, "stay", stay_id) if e.action == "stay.closed"]
        assert len(closes) == 1
        assert s.get(ParkingSession, stay_id).status == "closed"


def test_database_unavailable_denies_and_recovers(app, client, lanes, db, monkeypatch):
    from parkinglot.barrier import events as events_mod
    from sqlalchemy.exc import OperationalError

    def down(*a, **k):
        raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(events_mod, "process", down)
    r = plate_event(client, lanes["entry"], lanes["key"], event_id="db1")
    assert r.status_code == 503 and r.get_json()["decision"] == "deny"
    assert r.get_json()["error"]["code"] == "unavailable"
    monkeypatch.undo()
    r = plate_event(client, lanes["entry"], lanes["key"], event_id="db1")
    assert r.status_code == 200 and r.get_json()["decision"] == "open"


def _no_dispatcher_sweep(app) -> None:
    """Put off the barrier dispatcher's periodic sweep (before its thread starts), so that no
    background thread meets a connection a test killed before the request it is meant for."""
    app.extensions["parkinglot_dispatcher"].sweep_interval_s = 3600


def _kill_app_connection(app, db) -> None:
    """What a PostgreSQL restart does to pooled connections: the server ends them. Every idle
    connection of the app's pool goes (the barrier dispatcher's thread may have added one beside
    the request's), so whichever the next request gets is dead. The dispatcher is drained first."""
    from sqlalchemy import text

    app.extensions["parkinglot_dispatcher"].drain()
    engine = app.extensions["parkinglot"].engine
    conns = [engine.connect() for _ in range(max(1, engine.pool.checkedin()))]
    pids = [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in conns]
    for c in conns:
        c.close()
    with db.engine.connect() as conn:
        for pid in pids:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


@postgresql_only  # a server-side disconnect needs a server
def test_connection_dropped_while_busy_is_retried_not_denied(app, client, lanes, db, caplog, monkeypatch):
    from parkinglot import db as db_module

    _no_dispatcher_sweep(app)
    assert plate_event(client, lanes["entry"], lanes["key"], plate="DROP1", event_id="d1").status_code == 200
    # the idle clock stands still, so the pool does not ping the connection first (however slow
    # this machine is): the statement fails, the pool is reset, the lane retries
    monkeypatch.setattr(db_module, "_idle_clock", lambda: 0.0)
    _kill_app_connection(app, db)
    r = plate_event(client, lanes["entry"], lanes["key"], plate="DROP2", event_id="d2")
    assert r.status_code == 200 and r.get_json()["decision"] == "open", r.get_json()
    assert "retrying once" in caplog.text
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PlateRead).where(PlateRead.event_id == "d2")) == 1


@postgresql_only
def test_frame_event_whose_connection_drops_mid_request_is_retried_with_its_frames(app, client, lanes, db,
                                                                                   fake_pipeline, caplog):
    assert plate_event(client, lanes["entry"], lanes["key"], plate="DROP0", event_id="f0").status_code == 200
    recognize = fake_pipeline.recognize

    def drop_then_recognize(frames, region="us"):
        if fake_pipeline.calls == 0:  # after the frames were read, before anything is stored
            from sqlalchemy import text
            from parkinglot.web.transaction import db as request_db

            pid = request_db().execute(text("SELECT pg_backend_pid()")).scalar_one()
            with db.engine.connect() as conn:
                assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        return recognize(frames, region)

    fake_pipeline.recognize = drop_then_recognize
    r = frame_event(client, lanes["entry"], lanes["key"], [jpeg()], event_id="f1")
    assert r.status_code == 200 and r.get_json()["decision"] == "open", r.get_json()
    assert "retrying once" in caplog.text
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PlateRead).where(PlateRead.event_id == "f1")) == 1


@postgresql_only
def test_connection_dropped_while_idle_is_found_by_the_checkout_ping(app, client, lanes, db, caplog, monkeypatch):
    import time

    from parkinglot import db as db_module

    _no_dispatcher_sweep(app)
    assert plate_event(client, lanes["entry"], lanes["key"], plate="IDLE1", event_id="i1").status_code == 200
    _kill_app_connection(app, db)
    # the pooled connection has been idle for longer than IDLE_PING_S: the idle clock moves on, nobody sleeps
    monkeypatch.setattr(db_module, "_idle_clock", lambda: time.monotonic() + db_module.IDLE_PING_S + 1)
    r = plate_event(client, lanes["entry"], lanes["key"], plate="IDLE2", event_id="i2")
    assert r.status_code == 200 and r.get_json()["decision"] == "open", r.get_json()
    assert "retrying once" not in caplog.text  # the ping replaced the dead connection before any statement


def test_recognize_only_stores_nothing(client, lanes, db):
    data = {"frame": [(io.BytesIO(jpeg()), "f.jpg", "image/jpeg")]}
    r = client.post("/api/v1/recognize", data=data, headers=auth(lanes["key"]), content_type="multipart/form-data")
    assert r.status_code == 200
    validate("Recognition", r.get_json())
    assert count(db, PlateRead) == 0 and count(db, Evidence) == 0


def test_lane_state(client, lanes):
    plate_event(client, lanes["entry"], lanes["key"])
    r = client.get(f"/api/v1/lanes/{lanes['entry']}", headers=auth(lanes["key"]))
    assert r.status_code == 200
    validate("LaneState", r.get_json())
    assert r.get_json()["last_decision"]["decision"] == "open"


def test_openapi_document_is_served(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1") and "/lanes/{lane}/events" in spec["paths"]


def test_a_reason_or_a_decision_id_of_the_wrong_kind_is_refused(client, lanes, db):
    """Found by the API fuzzing once it named real lanes: a manual open's reason given as a list
    was stored as its repr, and a passage's decision_id beyond any row id was a 500."""
    import base64

    from parkinglot.records import users

    with db.sessions() as s:
        site = sites.get_site(s, "HQ")
        users.create_user(s, username="sup1", password="quiet-lantern-orbit", role="supervisor", sites=[site])
        s.commit()
    basic = {"Authorization": "Basic " + base64.b64encode(b"sup1:quiet-lantern-orbit").decode()}
    before = count(db, Decision)
    for reason in (["barrier", "stuck"], 42, None, {"text": "stuck"}):
        r = client.post(f"/api/v1/lanes/{lanes['entry']}/open", json={"reason": reason}, headers=basic)
        assert r.status_code == 422 and "reason" in r.get_json()["error"]["message"], (reason, r.get_json())
        r = client.post("/api/v1/sites/HQ/emergency", json={"active": True, "reason": reason}, headers=basic)
        assert r.status_code == 422 and "reason" in r.get_json()["error"]["message"], (reason, r.get_json())
    assert count(db, Decision) == before
    with db.sessions() as s:
        assert not sites.get_site(s, "HQ").emergency_mode
    r = client.post(f"/api/v1/lanes/{lanes['entry']}/open", json={"reason": "barrier stuck", "no_vehicle": True},
                    headers=basic)
    assert r.status_code == 200 and r.get_json()["decision"] == "open"
    url = f"/api/v1/lanes/{lanes['entry']}/passages"
    for decision_id in (2**63, 2**70, -(2**70)):
        r = client.post(url, json={"decision_id": decision_id}, headers=auth(lanes["key"]))
        assert r.status_code == 422 and r.get_json()["decision"] in ("deny", "attendant"), decision_id


def test_an_out_of_sync_connection_counts_as_lost():
    """libpq's "another command is already in progress" (the server ended the backend while a
    query was being sent) is a lost connection; other operational errors and programming errors
    are not, and a connection psycopg marks broken or closed always is."""
    from parkinglot.db import is_lost_connection

    class OperationalError(Exception):
        pass

    class ProgrammingError(Exception):
        pass

    assert is_lost_connection(OperationalError("sending query failed: another command is already in progress"))
    assert not is_lost_connection(OperationalError("deadlock detected"))
    assert not is_lost_connection(ProgrammingError("another command is already in progress"))
    assert is_lost_connection(OperationalError("deadlock detected"), type("C", (), {"broken": True})())
    assert is_lost_connection(ValueError("x"), type("C", (), {"closed": True, "broken": False})())


@postgresql_only
def test_frame_event_whose_query_meets_an_out_of_sync_connection_is_retried(app, client, lanes, db, caplog):
    """The race of test_frame_event_whose_connection_drops_mid_request_is_retried_with_its_frames
    made deterministic: the first statement of the request fails
    as libpq reports a backend ended mid-send; the pool drops the connection, the event is
    retried once on a fresh one and opens, stored once."""
    import psycopg
    from sqlalchemy import event as sa_event

    from parkinglot.web.transaction import context

    with app.app_context():
        engine = context().engine
    raised = []

    def fail_once(conn, cursor, statement, params, context, executemany):
        if not raised and "INSERT" in statement.upper():
            raised.append(statement)
            raise psycopg.OperationalError("sending query failed: another command is already in progress")

    sa_event.listen(engine, "before_cursor_execute", fail_once)
    try:
        r = plate_event(client, lanes["entry"], lanes["key"], plate="SYNC1", event_id="s1")
    finally:
        sa_event.remove(engine, "before_cursor_execute", fail_once)
    assert raised, "the failure was never injected"
    assert r.status_code == 200 and r.get_json()["decision"] == "open", r.get_json()
    assert "retrying once" in caplog.text
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PlateRead).where(PlateRead.event_id == "s1")) == 1
