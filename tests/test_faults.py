"""Faults at the lane: the controller always gets a fail-closed answer and nothing half-stored remains."""
import http.server
import io
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parkinglot.barrier.dispatch import execute
from parkinglot.barrier.drivers import DriverError
from parkinglot.barrier.drivers.http_relay import HttpRelayDriver
from parkinglot.records import audit, sites
from parkinglot.records.models import Alert, BarrierCommand, Decision, Evidence, Lane, ParkingSession, PlateRead
from parkinglot.records.types import utcnow

from .factories import make_site
from .test_api_lanes import auth, frame_event, jpeg, plate_event


@pytest.fixture
def lanes(db):
    with db.sessions() as s:
        site, entry, exit_ = make_site(s, code="HQ")
        key = sites.create_device(s, site, "ctl").key
        s.commit()
    return {"entry": entry.code, "exit": exit_.code, "key": key, "entry_id": entry.id}


def count(db, model):
    with db.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_evidence_disk_unwritable_denies_and_stores_nothing(app, client, lanes, db, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the evidence folder should be")
    app.extensions["parkinglot"].evidence.root = blocker / "evidence"
    r = frame_event(client, lanes["entry"], lanes["key"], [jpeg()], event_id="disk-1")
    assert r.status_code == 503
    body = r.get_json()
    assert body["decision"] == "deny" and body["error"]["code"] == "evidence_write_failed"
    assert count(db, PlateRead) == 0 and count(db, Evidence) == 0 and count(db, ParkingSession) == 0
    app.extensions["parkinglot"].evidence.root = tmp_path / "evidence-ok"  # the disk is back
    r = frame_event(client, lanes["entry"], lanes["key"], [jpeg()], event_id="disk-1")
    assert r.status_code == 200 and r.get_json()["decision"] == "open"
    assert count(db, PlateRead) == 1


class _Relay(http.server.BaseHTTPRequestHandler):
    """A relay board that counts requests and holds each one until the test releases it
    (``gate``), then answers ``status``: a hanging relay without sleeping for seconds."""

    gate = threading.Event()
    status = 200
    received = 0

    def do_POST(self):  # noqa: N802
        type(self).received += 1
        type(self).gate.wait(timeout=30)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def relay():
    """The URL of a fresh ``_Relay`` (held until ``_Relay.gate`` is set, or answering at once)."""
    _Relay.gate, _Relay.status, _Relay.received = threading.Event(), 200, 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/relay"
    _Relay.gate.set()  # let any held request end
    server.shutdown()


def test_hanging_relay_does_not_delay_the_reply(app, client, lanes, db, relay):
    with db.sessions() as s:
        lane = s.get(Lane, lanes["entry_id"])
        lane.driver = "http_relay"
        lane.driver_config = {"url": relay, "timeout_s": 30, "retries": 0}
        s.commit()
    _Relay.status = 504
    r = plate_event(client, lanes["entry"], lanes["key"], event_id="relay-1")
    assert r.status_code == 200 and r.get_json()["decision"] == "open"
    with db.sessions() as s:  # the reply came while the relay still holds the command (it is not released yet)
        assert s.scalar(select(BarrierCommand.status)) == "pending"
    _Relay.gate.set()  # the relay finally answers, with a failure
    app.extensions["parkinglot_dispatcher"].drain(timeout_s=15)
    with db.sessions() as s:
        cmd = s.scalar(select(BarrierCommand))
        assert cmd.status == "failed" and "HTTP 504" in cmd.error
        assert s.scalar(select(Alert.kind)) == "driver_failure"
        assert s.scalar(select(func.count()).select_from(Decision)) == 1  # the decision record stands


class _Sleeps:
    """Stands in for the ``time`` module of the relay driver: records its back-off instead of sleeping."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.mark.parametrize("relay_answers", ["503", "nothing"])
def test_relay_driver_retries_with_exponential_backoff(relay, monkeypatch, relay_answers):
    from parkinglot.barrier.drivers import http_relay

    clock = _Sleeps()
    monkeypatch.setattr(http_relay, "time", clock)
    if relay_answers == "503":
        _Relay.status = 503
        _Relay.gate.set()
    driver = HttpRelayDriver({"url": relay, "timeout_s": 0.2, "retries": 2, "backoff_s": 0.05})
    with pytest.raises(DriverError, match="3 attempts") as failed:
        driver.open("L1")
    assert clock.slept == [0.05, 0.1]  # a back-off before each retry, doubling
    if relay_answers == "503":
        assert _Relay.received == 3 and "HTTP 503" in str(failed.value)
    else:  # a relay that never answers: each attempt ends at the driver's own timeout
        assert "timed out" in str(failed.value).lower()


def test_skewed_controller_clocks(client, lanes, db):
    """Entry controller 4 min fast, exit controller slow: both accepted, both times kept, the stay
    timed by the server's clock, and an exit its controller dates before the entry goes to an
    attendant instead of opening."""
    now = utcnow()
    r_in = plate_event(client, lanes["entry"], lanes["key"], plate="SKEW1", event_id="s-in",
                       captured_at=(now + timedelta(minutes=4)).isoformat())
    assert r_in.status_code == 200 and r_in.get_json()["decision"] == "open"
    early = plate_event(client, lanes["exit"], lanes["key"], plate="SKEW1", event_id="s-out-1",
                        captured_at=(now - timedelta(minutes=1)).isoformat())
    assert early.get_json()["decision"] == "attendant" and early.get_json()["reason"] == "exit_before_entry"
    r_out = plate_event(client, lanes["exit"], lanes["key"], plate="SKEW1", event_id="s-out-2",
                        captured_at=(utcnow() + timedelta(seconds=1)).isoformat())
    assert r_out.get_json()["decision"] == "open"
    with db.sessions() as s:
        stay = s.get(ParkingSession, r_in.get_json()["session_id"])
        assert stay.exited_at >= stay.entered_at and stay.entered_at <= utcnow()
        read = s.scalar(select(PlateRead).where(PlateRead.event_id == "s-in"))
        assert read.captured_at - read.received_at > timedelta(minutes=3)


@pytest.mark.parametrize("jump,replayed", [(timedelta(minutes=5), True), (timedelta(hours=1), False)])
def test_server_clock_jump_keeps_idempotency(client, lanes, db, monkeypatch, jump, replayed):
    """The server's clock jumps forward between a request and its retry: within the replay
    window the retry is recognised by its event id; beyond it the id counts as reused, so the
    retry is refused (409, attendant) and nothing is created twice."""
    first = plate_event(client, lanes["entry"], lanes["key"], plate="JUMP1", event_id="j-1").get_json()
    import parkinglot.web.api_lanes as api_lanes

    real = api_lanes.utcnow
    monkeypatch.setattr(api_lanes, "utcnow", lambda: real() + jump)
    r = plate_event(client, lanes["entry"], lanes["key"], plate="JUMP1", event_id="j-1")
    if replayed:
        assert r.status_code == 200 and r.get_json() == first
        assert count(db, PlateRead) == 1
    else:
        assert r.status_code == 409 and r.get_json()["decision"] == "attendant"
        assert count(db, ParkingSession) == 1


def test_expired_stays_job(db, lanes, client):
    plate_event(client, lanes["entry"], lanes["key"], plate="LONG1", event_id="l-1")
    from parkinglot.records import stays
    from parkinglot.records.models import Site

    with db.sessions() as s:
        site = s.scalar(select(Site).where(Site.code == "HQ"))
        expired = stays.expire_overdue(s, site, now=utcnow() + timedelta(hours=site.max_stay_hours + 1))
        s.commit()
        assert len(expired) == 1
        assert audit.verify(s).ok


def test_decisions_are_logged_as_structured_json(client, lanes, caplog):
    import json
    import logging

    from parkinglot.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="parkinglot.lane"):
        plate_event(client, lanes["entry"], lanes["key"], plate="LOG1", event_id="log-1")
    record = next(r for r in caplog.records if r.getMessage() == "lane decision")
    line = json.loads(JsonFormatter().format(record))
    assert line["lane"] == lanes["entry"] and line["event_id"] == "log-1" and line["decision"] == "open"
    assert "LOG1" not in json.dumps(line)  # logs carry no plates (personal data)
