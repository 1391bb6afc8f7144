"""Retention that forgets a plate everywhere, data-subject exports of one subject only, a plate-free audit trail.

The whole-database scan does not trust a list of columns: it reads every row of every
table the database has (reflected, so tables added later are covered) and looks for the
purged plates and tickets as text.
"""
import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select, text

from parkinglot import plates
from parkinglot.barrier import events, lanes
from parkinglot.billing import disputes, payments
from parkinglot.cli import main
from parkinglot.records import alerts, audit, permits, stays, users, vehicles
from parkinglot.records.errors import InvalidInput
from parkinglot.records.evidence import EvidenceStore
from parkinglot.records.models import (Alert, AuditEvent, Evidence, ParkingSession, PlateRead, Shift,
                                       UnpaidBalance)
from parkinglot.records.privacy import retention
from parkinglot.records.privacy.subject_export import LINKED, LINKED_ENTRY, write_folder
from parkinglot.records.types import utcnow

from .conftest import TEST_PLATE_KEY as KEY
from .factories import T0, make_site
from .test_evidence import jpeg_bytes


@pytest.fixture
def world(db, session, tmp_path):
    site, entry, exit_ = make_site(session)
    user = users.create_user(session, username="sup", password="long-enough-pw-1", role="supervisor", sites=[site])
    session.commit()
    return {"site": site, "entry": entry, "exit": exit_, "store": EvidenceStore(tmp_path / "ev"), "user": user}


def lane_event(session, w, lane, plate, when, seed, ticket=None, confidence=0.95):
    ev = events.LaneEvent(lane_id=lane.id, captured_at=when, received_at=when, ticket=ticket,
                          reading=events.Reading(plate=plate, raw_text=plate, confidence=confidence),
                          frames=(events.Frame(jpeg_bytes(seed), "image/jpeg", 60, 40),))
    reply = events.process(session, w["store"], ev).reply
    session.commit()
    return reply


def visit(session, w, plate, at, minutes=30, seed=0, leave=True):
    out = [lane_event(session, w, w["entry"], plate, at, seed * 10)]
    if leave:
        out.append(lane_event(session, w, w["exit"], plate, at + timedelta(minutes=minutes), seed * 10 + 1,
                              ticket=out[0].ticket))
    return out


def test_audit_trail_holds_no_plates(world, session):
    visit(session, world, "SECRET1", T0)
    texts = " ".join(e.data for e in session.scalars(select(AuditEvent)))
    assert "SECRET1" not in texts and "hmac:" in texts
    assert audit.plate_digest("SECRET1", audit.plate_key(session)) in texts  # the key's holder can still confirm


def test_each_instance_digests_plates_under_its_own_key(db, tmp_path):
    """Two instances in one process (two apps, a restore drill): building the second does not
    change the key the first one's sessions digest under; a session with no key refuses to audit."""
    from parkinglot.context import build_context
    from parkinglot.db import make_session_factory

    ctxs = [build_context({"INSTANCE_PATH": str(tmp_path / name), "DATABASE_URL": db.url,
                           "EVIDENCE_DIR": str(tmp_path / name / "ev"), "AUDIT_PLATE_KEY": f"key-{name}"})
            for name in ("a", "b")]
    try:
        for ctx, plate in zip(ctxs, ("QVXA1", "QVXB1")):
            with ctx.sessions() as s:
                audit.append(s, "test.keyed", "vehicle", plate, {"plate": plate})
                s.commit()
        with db.sessions() as s:
            data = [json.loads(e.data) for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "test.keyed")
                                                          .order_by(AuditEvent.id))]
        assert [d["plate"] for d in data] == [audit.plate_digest("QVXA1", b"key-a"), audit.plate_digest("QVXB1", b"key-b")]
        assert audit.plate_digest("QVXA1", b"key-a") != audit.plate_digest("QVXA1", b"key-b")
    finally:
        for ctx in ctxs:
            ctx.close()
    with make_session_factory(db.engine)() as bare, pytest.raises(RuntimeError, match="no audit plate key"):
        audit.append(bare, "test.keyed", "vehicle", "QVXC1", {"plate": "QVXC1"})


def test_audit_digests_tickets_and_plates_written_into_text():
    data = audit.pseudonymise({"plate": "QVX123", "ticket": "ABCDEF012345",
                               "message": "Hotlisted vehicle QVX123 at gate QVX1234", "nested": [{"note": "QVX123!"}]},
                              KEY)
    flat = json.dumps(data)
    assert "ABCDEF012345" not in flat and "QVX123 " not in flat and "QVX123!" not in flat
    assert "QVX1234" in flat  # another word that merely starts with the plate is left alone
    assert data["message"] == f"Hotlisted vehicle {audit.plate_digest('QVX123', KEY)} at gate QVX1234"


# --- the whole-database scan ---------------------------------------------------------------------

def whole_database_text(session) -> dict[str, list[str]]:
    """table -> every row of it as text (every column, whatever its type)."""
    conn = session.connection()
    out = {}
    for name in inspect(conn).get_table_names():
        out[name] = [" | ".join(str(v) for v in row) for row in conn.execute(text(f'SELECT * FROM "{name}"'))]
    return out


def occurrences(dump: dict[str, list[str]], needles) -> list[tuple[str, str, str]]:
    return [(table, needle, row[:160]) for table, rows in dump.items() for row in rows for needle in needles
            if needle and needle in row]


def build_history(session, w):
    """Visitors of every kind, 100 days before 'now'; some to be forgotten, some to be kept."""
    site, user, store = w["site"], w["user"], w["store"]
    B = utcnow().replace(microsecond=0) - timedelta(hours=2)
    gone, kept, tickets = [], [], []

    def stay_of(reply):
        return session.get(ParkingSession, reply.session_id)

    # an ordinary visit, with a repeated read of the same car at the entry
    r = visit(session, w, "QVXOLD1", B, seed=1, leave=False)
    lane_event(session, w, w["entry"], "QVXOLD1", B + timedelta(seconds=5), 19)
    lane_event(session, w, w["exit"], "QVXOLD1", B + timedelta(minutes=30), 18)
    gone.append("QVXOLD1"), tickets.append(r[0].ticket)
    # a long stay that ended before the period: all of it goes, and the note of a balance left
    # unpaid on it (a table added by another change: written here without its service)
    r = visit(session, w, "QVXSHRT2", B, minutes=5 * 24 * 60, seed=2)
    gone.append("QVXSHRT2"), tickets.append(r[0].ticket)
    session.add(UnpaidBalance(site_id=site.id, session_id=r[0].session_id, lane_id=w["exit"].id, amount_minor=300,
                              currency=site.currency, cause="manual_exit", approved_by=user.id,
                              reason="QVXSHRT2 left while the pay station was down"))
    session.commit()
    # an alert about the stay, resolved long ago, with the plate in its message and note
    r = visit(session, w, "QVXALRT3", B, seed=3)
    a = alerts.raise_alert(session, site_id=site.id, kind="hotlist", plate="QVXALRT3",
                           session_id=r[0].session_id, message="check QVXALRT3 at the exit")
    alerts.resolve(session, a, user.id, "QVXALRT3 was a false alarm")
    session.commit()
    gone.append("QVXALRT3"), tickets.append(r[0].ticket)
    # a dispute with the plate in its reason and note, and a payment referencing the ticket
    r = visit(session, w, "QVXDISP4", B, seed=4)
    stay = stay_of(r[0])
    payments.record_payment(session, site, amount_minor=300, method="cash", reference=f"desk-{r[0].ticket}", stay=stay,
                            user_id=user.id)
    d = disputes.open_dispute(session, stay, user_id=user.id, reason="QVXDISP4 says the fee is wrong")
    disputes.resolve_dispute(session, d, user_id=user.id, outcome="uphold", note="QVXDISP4 paid the right fee")
    session.commit()
    gone.append("QVXDISP4"), tickets.append(r[0].ticket)
    # a look-alike exit read confirmed by an attendant (the confirmation closes the stay now)
    r = visit(session, w, "QVXCONF5", B, seed=5, leave=False)
    held = lane_event(session, w, w["exit"], "QVXC0NF5", utcnow() - timedelta(minutes=2), 51)
    assert held.decision == "attendant"
    lanes.confirm_match(session, w["exit"], user, r[0].session_id, "papers show QVXCONF5")
    session.commit()
    gone += ["QVXCONF5", "QVXC0NF5"]
    tickets.append(r[0].ticket)
    # a visitor pass that ended long ago, used for the visit
    permits.create_visitor_pass(session, site, plate="QVXPASS6", valid_from=B - timedelta(hours=1),
                                valid_to=B + timedelta(days=1), note="guest QVXPASS6 of flat 4", user_id=user.id)
    session.commit()
    r = visit(session, w, "QVXPASS6", B, seed=6)
    gone.append("QVXPASS6"), tickets.append(r[0].ticket)
    # a lock, released long ago
    vehicles.lock_vehicle(session, site_id=site.id, plate="QVXLOCK7", user_id=user.id, note="owner of QVXLOCK7 asked")
    vehicles.release_lock(session, site_id=site.id, plate="QVXLOCK7", user_id=user.id, note="QVXLOCK7 unlocked")
    session.commit()
    r = visit(session, w, "QVXLOCK7", B, seed=7)
    gone.append("QVXLOCK7"), tickets.append(r[0].ticket)
    # a hotlisted car refused at the entry, then taken off the list
    entry = vehicles.add_to_hotlist(session, plate="QVXHOT8", reason="QVXHOT8 reported stolen", site_id=site.id,
                                    user_id=user.id)
    session.commit()
    refused = lane_event(session, w, w["entry"], "QVXHOT8", B, 81)
    assert refused.decision != "open"
    vehicles.remove_from_hotlist(session, entry, user.id, "QVXHOT8 found")
    for al in alerts.open_alerts(session, [site.id]):
        alerts.resolve(session, al, user.id, f"handled {al.plate}")
    session.commit()
    gone.append("QVXHOT8")
    # an exit with no entry (alert raised and resolved), tied to no stay
    lane_event(session, w, w["exit"], "QVXNOEN9", B, 91)
    for al in alerts.open_alerts(session, [site.id]):
        alerts.resolve(session, al, user.id, f"{al.plate} came in by the back gate")
    session.commit()
    gone.append("QVXNOEN9")

    # a note in a table retention knows nothing about (written without an audit entry)
    session.add(Shift(user_id=user.id, site_id=site.id, started_at=B, ended_at=B + timedelta(hours=8),
                      handover_note="QVXOLD1 and QVXNOEN9 to watch; QVXNEW11 is a regular"))
    session.commit()

    # kept: a long stay that ended within the period, a recent visit, a car inside, an open alert
    long_kept = visit(session, w, "QVXLNG10", B, minutes=20 * 24 * 60, seed=10)
    visit(session, w, "QVXNEW11", B + timedelta(days=95), seed=11)
    visit(session, w, "QVXIN12", B, seed=12, leave=False)
    r = visit(session, w, "QVXOPN13", B, seed=13)
    alerts.raise_alert(session, site_id=site.id, kind="expired_stay", plate="QVXOPN13",
                       session_id=r[0].session_id, message="look at QVXOPN13")
    session.commit()
    kept += ["QVXLNG10", "QVXNEW11", "QVXIN12", "QVXOPN13"]
    return B, gone, kept, [t for t in tickets if t], long_kept


def test_retention_forgets_a_plate_everywhere(world, session):
    w = world
    B, gone, kept, tickets, long_kept = build_history(session, w)
    assert len(tickets) >= 6
    before = whole_database_text(session)
    assert {n for _, n, _ in occurrences(before, gone)} == set(gone)  # the scan sees them before

    now = B + timedelta(days=100)
    dry = retention.run(session, w["store"], days=90, now=now, dry_run=True)
    session.commit()
    assert whole_database_text(session)["plate_read"] == before["plate_read"]
    real = retention.run(session, w["store"], days=90, now=now, dry_run=False)
    session.commit()
    assert (real.reads, real.stays, real.images) == (dry.reads, dry.stays, dry.images)
    assert real.stays == 7 and real.credentials == 3 and real.decisions >= real.reads and real.alerts == 3
    assert real.other_rows == 2  # the shift note and the unpaid balance's, found by the sweep over every table

    after = whole_database_text(session)
    leaks = occurrences(after, gone + tickets)
    assert leaks == [], leaks[:10]
    # nor folded, as the look-alike indexes hold it (the stop lists' keys of ended entries included)
    assert occurrences(before, [plates.fold(p) for p in ("QVXHOT8", "QVXLOCK7")])
    folded_leaks = occurrences(after, [plates.fold(p) for p in gone])
    assert folded_leaks == [], folded_leaks[:10]
    assert {n for _, n, _ in occurrences(after, kept)} == set(kept)  # protected and recent ones stay
    note = session.scalars(select(Shift.handover_note)).one()
    assert note == "[purged] and [purged] to watch; QVXNEW11 is a regular"
    assert audit.verify(session).ok

    # the same basis for a stay and its reads: a long stay kept whole, with both photos
    stay = session.get(ParkingSession, long_kept[0].session_id)
    assert stay.plate == "QVXLNG10"
    for read_id in (stay.entry_read_id, stay.exit_read_id):
        read = session.get(PlateRead, read_id)
        assert read.plate == "QVXLNG10" and read.evidence_sha256
        assert w["store"].path_for(read.evidence_sha256, "image/jpeg").exists()
    # purged photos are gone from disk; money and times stay
    purged_files = [e for e in session.scalars(select(Evidence)) if e.purged_at is not None]
    assert len(purged_files) == real.images > 0
    assert not any(w["store"].path_for(e.sha256, e.content_type).exists() for e in purged_files)
    again = retention.run(session, w["store"], days=90, now=now, dry_run=False)
    assert (again.reads, again.stays, again.images, again.credentials) == (0, 0, 0, 0)


def test_retention_keeps_protected_records(world, session):
    w = world
    T = T0
    inside = visit(session, w, "INSIDE1", T, seed=2, leave=False)
    alerted = visit(session, w, "ALERT1", T, seed=3)
    alerts.raise_alert(session, site_id=w["site"].id, kind="hotlist", plate="ALERT1",
                       session_id=alerted[0].session_id, message="check")
    old = visit(session, w, "OLD1", T, seed=1)
    visit(session, w, "NEW1", T + timedelta(days=95), seed=4)
    session.commit()
    real = retention.run(session, w["store"], days=90, now=T + timedelta(days=100), dry_run=False)
    session.commit()
    assert (real.reads, real.stays, real.images) == (2, 1, 2)
    purged = session.get(PlateRead, old[0].read_id)
    assert purged.plate == "" and purged.evidence_sha256 is None and purged.no_plate_reason == retention.PURGED
    assert session.get(ParkingSession, old[0].session_id).exited_at is not None  # times and money stay
    assert {r.plate for r in session.scalars(select(PlateRead)) if r.plate} == {"INSIDE1", "ALERT1", "NEW1"}
    assert session.get(ParkingSession, inside[0].session_id).plate == "INSIDE1"
    actions = [e.action for e in session.scalars(select(AuditEvent))]
    assert "retention.purged" in actions


def test_unpaid_balance_is_kept(world, session):
    w = world
    r = visit(session, w, "OWES1", T0, seed=5, leave=False)
    stay = session.get(ParkingSession, r[0].session_id)
    stays.close_stay(session, stay, exited_at=T0 + timedelta(hours=1), fee_minor=500, reason="attendant_override")
    session.commit()
    report = retention.run(session, w["store"], days=90, now=T0 + timedelta(days=200), dry_run=True)
    assert report.reads == 0 and report.stays == 0


@pytest.mark.parametrize("days", [0, -3, 1.5, True, "90"])
def test_retention_period_must_be_a_positive_number_of_days(world, session, days):
    with pytest.raises(InvalidInput, match="retention period"):
        retention.run(session, world["store"], days=days, dry_run=False)


def test_retention_cli_refuses_zero_and_negative_days(tmp_path, monkeypatch):
    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("PARKINGLOT_DATABASE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    for days in ("0", "-3"):
        r = runner.invoke(main, ["retention", "run", "--days", days, "--apply"])
        assert r.exit_code == 1 and "at least 1 day" in r.output and "Traceback" not in r.output, r.output
    r = runner.invoke(main, ["retention", "run"], env={"PARKINGLOT_RETENTION_DAYS": "0"})
    assert r.exit_code == 1 and "RETENTION_DAYS" in r.output
    r = runner.invoke(main, ["retention", "run", "--days", "30"])
    assert r.exit_code == 0 and "would purge 0 reads" in r.output



def test_retention_keeps_permit_holders_open_disputes_and_reads_behind_live_alerts(world, session):
    w = world
    permits.create_permit(session, w["site"], number="P1", holder="Tenant", vehicles=["PERM1"],
                          valid_from=T0 - timedelta(days=10), valid_to=T0 + timedelta(days=400))
    session.commit()
    holder = visit(session, w, "PERM1", T0, seed=21)
    disputed = visit(session, w, "DISP1", T0, seed=22)
    plain = visit(session, w, "PLAIN1", T0, seed=23)
    ghost = lane_event(session, w, w["exit"], "GHOST1", T0, 240)  # no entry: refused, an open alert on the read
    dispute = disputes.open_dispute(session, session.get(ParkingSession, disputed[0].session_id),
                                    user_id=w["user"].id, reason="I was never there")
    session.commit()
    assert session.get(ParkingSession, holder[0].session_id).permit_id is not None
    assert session.scalar(select(Alert.read_id).where(Alert.plate == "GHOST1")) == ghost.read_id

    now = T0 + timedelta(days=100)
    report = retention.run(session, w["store"], days=90, now=now, dry_run=False)
    session.commit()
    assert (report.reads, report.stays) == (2, 1)  # PLAIN1's entry and exit reads, and its stay
    assert {r.plate for r in session.scalars(select(PlateRead)) if r.plate} == {"PERM1", "DISP1", "GHOST1"}
    assert session.get(ParkingSession, plain[0].session_id).plate == ""

    disputes.resolve_dispute(session, dispute, user_id=w["user"].id, outcome="uphold", note="photos match")
    session.commit()
    again = retention.run(session, w["store"], days=90, now=now, dry_run=False)
    assert (again.reads, again.stays) == (2, 1)  # a resolved dispute no longer holds DISP1's records


def test_retention_never_deletes_a_photo_a_kept_read_still_uses(world, session):
    """Photos are stored once by content: an old visitor's photo may be a newer read's too."""
    w = world
    old = visit(session, w, "OLD2", T0, seed=30)
    new = visit(session, w, "NEW2", T0 + timedelta(days=95), seed=30)  # the very same frames
    shared = session.get(PlateRead, new[0].read_id).evidence_sha256
    assert shared and session.get(PlateRead, old[0].read_id).evidence_sha256 == shared
    report = retention.run(session, w["store"], days=90, now=T0 + timedelta(days=100), dry_run=False)
    session.commit()
    assert (report.reads, report.images) == (2, 0)
    assert session.get(PlateRead, old[0].read_id).evidence_sha256 is None
    for reply in new:
        sha = session.get(PlateRead, reply.read_id).evidence_sha256
        ev = session.get(Evidence, sha)
        assert ev.purged_at is None and w["store"].path_for(sha, ev.content_type).exists()

# --- data-subject exports ------------------------------------------------------------------------

def test_subject_export_holds_that_subject_only(world, session, tmp_path):
    w = world
    visit(session, w, "ME123", T0, seed=6)
    visit(session, w, "OTHER9", T0, seed=7)
    counts = write_folder(session, w["store"], "me-123", tmp_path / "export", requested_by="the keeper, by email",
                          operator="tester")
    session.commit()
    data = json.loads((tmp_path / "export" / "records.json").read_text())
    assert counts["reads"] == 2 and counts["stays"] == 1 and len(data["photos"]) == 2
    assert all(r["plate"] == "ME123" for r in data["reads"])
    assert "OTHER9" not in (tmp_path / "export" / "records.json").read_text()
    assert sorted(p.name for p in (tmp_path / "export" / "photos").iterdir()) == \
        sorted(p.split("/")[-1] for p in data["photos"])
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "subject.exported")).one()
    recorded = json.loads(event.data)
    assert recorded["requested_by"] == "the keeper, by email" and recorded["operator"] == "tester"
    assert "ME123" not in event.data

    # the same folder again, for another plate: refused, nothing written, nothing audited
    with pytest.raises(InvalidInput, match="not an empty folder"):
        write_folder(session, w["store"], "OTHER9", tmp_path / "export", requested_by="someone else",
                     operator="tester")
    assert "OTHER9" not in (tmp_path / "export" / "records.json").read_text()
    with pytest.raises(InvalidInput, match="who asked"):
        write_folder(session, w["store"], "OTHER9", tmp_path / "fresh", requested_by=" ", operator="tester")
    assert not (tmp_path / "fresh").exists()


def test_subject_export_includes_the_confirmed_look_alike_read(world, session, tmp_path):
    w = world
    r = visit(session, w, "QVXCAR1", utcnow() - timedelta(hours=1), seed=8, leave=False)
    visit(session, w, "QVXOTHR2", utcnow() - timedelta(hours=1), seed=9, leave=False)
    held = lane_event(session, w, w["exit"], "QVXCAR7", utcnow() - timedelta(minutes=1), 88)  # a look-alike
    assert held.decision == "attendant" and "QVXCAR1" in held.candidates
    lanes.confirm_match(session, w["exit"], w["user"], r[0].session_id, "the driver's papers match")
    session.commit()
    write_folder(session, w["store"], "QVXCAR1", tmp_path / "me", requested_by="keeper", operator="t")
    data = json.loads((tmp_path / "me" / "records.json").read_text())
    linked = [x for x in data["reads"] if x.get("linked_by") == LINKED]
    assert [x["plate"] for x in linked] == ["QVXCAR7"] and len(data["reads"]) == 2
    assert len(data["photos"]) == 2 and "QVXOTHR2" not in json.dumps(data)  # no other car's plate
    # the other car's export does not get that read
    write_folder(session, w["store"], "QVXOTHR2", tmp_path / "other", requested_by="keeper", operator="t")
    assert "QVXCAR7" not in (tmp_path / "other" / "records.json").read_text()


def test_export_cli_requires_who_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("PARKINGLOT_DATABASE_URL", raising=False)
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"])
    r = runner.invoke(main, ["export-plate", "AB123", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--requested-by" in r.output
    r = runner.invoke(main, ["export-plate", "AB123", str(tmp_path / "out"), "--requested-by", "keeper by post"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["export-plate", "CD456", str(tmp_path / "out"), "--requested-by", "keeper by post"])
    assert r.exit_code == 1 and "not an empty folder" in r.output and "Traceback" not in r.output


def test_a_purged_events_stored_reply_keeps_its_shape(world, session):
    """The reply kept for idempotent retries loses the plate and ticket, not the fields a replay parses."""
    w = world
    ev = events.LaneEvent(lane_id=w["entry"].id, captured_at=T0, received_at=T0, event_id="ctl-7",
                          reading=events.Reading(plate="QVXRETRY", raw_text="QVXRETRY", confidence=0.95),
                          request_digest=events.request_digest(audit.plate_key(session), w["entry"].id,
                                                               plate="QVXRETRY"))
    first = events.process(session, w["store"], ev).reply
    session.commit()
    lane_event(session, w, w["exit"], "QVXRETRY", T0 + timedelta(minutes=20), 3, ticket=first.ticket)
    retention.run(session, w["store"], days=90, now=T0 + timedelta(days=100), dry_run=False)
    session.commit()
    prior = events.prior_event(session, w["entry"].id, "ctl-7")
    assert prior.read.request_digest is None and prior.read.plate == ""
    stored = prior.stored_outcome().reply
    assert stored.decision == first.decision == "open" and stored.session_id == first.session_id
    assert stored.plate == "" and stored.ticket is None and stored.candidates == ()


# --- the confirmed look-alike read is the stay's exit read -----------------------------------------

def confirmed_lookalike(session, w, *, wait_minutes: int):
    """QVXCAR1 is inside; at the exit it is read as QVXCAR7 and held; an attendant confirms the match
    ``wait_minutes`` after the read (a queue, a walk to the barrier)."""
    r = visit(session, w, "QVXCAR1", utcnow() - timedelta(hours=2), seed=8, leave=False)
    held = lane_event(session, w, w["exit"], "QVXCAR7", utcnow() - timedelta(minutes=wait_minutes), 88)
    assert held.decision == "attendant" and "QVXCAR1" in held.candidates
    lanes.confirm_match(session, w["exit"], w["user"], r[0].session_id, "the driver's papers match")
    session.commit()
    return session.get(ParkingSession, r[0].session_id), held


def test_confirming_a_look_alike_links_the_held_read_as_the_exit(world, session, tmp_path):
    """The link is recorded when the attendant confirms, not guessed later from times: an export made
    any time afterwards includes the read (marked), and the look-alike plate's own export does not."""
    stay, held = confirmed_lookalike(session, world, wait_minutes=20)
    assert stay.exit_read_id == held.read_id
    write_folder(session, world["store"], "QVXCAR1", tmp_path / "me", requested_by="keeper", operator="t")
    data = json.loads((tmp_path / "me" / "records.json").read_text())
    linked = [x for x in data["reads"] if x.get("linked_by") == LINKED]
    assert [x["id"] for x in linked] == [held.read_id] and len(data["photos"]) == 2
    # the keeper of QVXCAR7 gets no photo of QVXCAR1's car: an attendant confirmed it was not theirs
    write_folder(session, world["store"], "QVXCAR7", tmp_path / "lookalike", requested_by="keeper", operator="t")
    other = json.loads((tmp_path / "lookalike" / "records.json").read_text())
    assert other["reads"] == [] and other["photos"] == []


def test_a_kept_stay_keeps_its_confirmed_exit_read(world, session):
    """Stays and their reads are purged on the same basis: a disputed stay keeps the look-alike read
    (and photo) that closed it, and loses it with the stay once the dispute is settled."""
    w = world
    stay, held = confirmed_lookalike(session, w, wait_minutes=3)
    dispute = disputes.open_dispute(session, stay, user_id=w["user"].id, reason="that was not my car leaving")
    session.commit()
    now = utcnow() + timedelta(days=100)
    retention.run(session, w["store"], days=90, now=now, dry_run=False)
    session.commit()
    read = session.get(PlateRead, held.read_id)
    assert read.plate == "QVXCAR7" and read.evidence_sha256
    assert w["store"].path_for(read.evidence_sha256, "image/jpeg").exists()
    disputes.resolve_dispute(session, dispute, user_id=w["user"].id, outcome="uphold", note="photos match")
    session.commit()
    again = retention.run(session, w["store"], days=90, now=now, dry_run=False)
    session.commit()
    session.expire_all()  # retention writes with bulk UPDATEs
    assert (again.reads, again.stays) == (2, 1)
    assert session.get(PlateRead, held.read_id).plate == "" and session.get(ParkingSession, stay.id).plate == ""


def test_the_sweep_covers_columns_added_later():
    """Other changes keep adding tables and columns. The sweep takes every table of the ORM, and in
    the tables retention redacts row by row (or that hold configuration) it leaves alone only the
    columns reviewed when it was written: a ticket or registration column added to ``payment``
    later, or a note added to ``device``, is swept without anyone remembering to list it. The
    audit trail and its checkpoints are never touched (their hashes and signatures must verify)."""
    from sqlalchemy import JSON as SAJSON, Column, ForeignKey, Integer, MetaData, String, Table, Text

    from parkinglot.records.privacy.scrub import swept_columns

    md = MetaData()
    payment = Table("payment", md, Column("id", Integer, primary_key=True), Column("reason", Text),
                    Column("ticket", String(64)), Column("vehicle_registration", String(16)),
                    Column("method", String(16)), Column("session_id", Integer, ForeignKey("payment.id")))
    device = Table("device", md, Column("id", Integer, primary_key=True), Column("name", String(120)),
                   Column("revoke_reason", Text), Column("kind", String(16)))
    new = Table("unpaid_balance", md, Column("id", Integer, primary_key=True), Column("reason", Text),
                Column("extra", SAJSON), Column("currency", String(3)), Column("licence_plate_no", String(16)))
    checkpoint = Table("audit_checkpoint", md, Column("seq", Integer, primary_key=True),
                       Column("signature", String(128)))
    names = {t.name: sorted(c.name for c, _ in swept_columns(t)) for t in (payment, device, new, checkpoint)}
    assert names == {"payment": ["ticket", "vehicle_registration"], "device": ["revoke_reason"],
                     "unpaid_balance": ["extra", "licence_plate_no", "reason"], "audit_checkpoint": []}


def test_data_protection_commands_answer_with_sentences(tmp_path, monkeypatch):
    """A database not upgraded yet, a server that cannot be reached, a setting that is not a number:
    each answered with a sentence saying what to do, never a traceback (nor the password)."""
    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("PARKINGLOT_DATABASE_URL", raising=False)
    runner = CliRunner()
    commands = (["retention", "run"], ["export-plate", "AB123", str(tmp_path / "out"), "--requested-by", "keeper"])
    for args in commands:  # a fresh instance, `db upgrade` forgotten
        r = runner.invoke(main, args)
        assert r.exit_code == 1 and "parkinglot db upgrade" in r.output, r.output
        assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output, r.output
    unreachable = "postgresql://parkinglot:pw-s3cret-77@127.0.0.1:1/parkinglot"
    for args in commands:
        r = runner.invoke(main, ["--database-url", unreachable, *args])
        assert r.exit_code == 1 and "cannot use the database" in r.output, r.output
        assert "pw-s3cret-77" not in r.output and isinstance(r.exception, SystemExit), r.output
    r = runner.invoke(main, ["retention", "run"], env={"PARKINGLOT_RETENTION_DAYS": "ninety"})
    assert r.exit_code == 1 and "PARKINGLOT_RETENTION_DAYS" in r.output and "ninety" in r.output, r.output
    assert isinstance(r.exception, SystemExit)


def test_reads_an_attendant_acted_on_by_hand_are_linked_too(world, session, tmp_path):
    """A held entry read admitted by hand under the plate the attendant typed, and a held exit read
    let out by hand naming the car: both reads are of the subject's car under another plate."""
    w = world
    held_in = lane_event(session, w, w["entry"], "QVXCAR7", utcnow() - timedelta(hours=1), 61, confidence=0.3)
    assert held_in.decision == "attendant"
    stay = lanes.open_by_hand(session, w["entry"], w["user"], "plate is dirty, papers say QVXCAR1", plate="QVXCAR1",
                              read_id=held_in.read_id).stay
    session.commit()
    held_out = lane_event(session, w, w["exit"], "QVXCAR7", utcnow() - timedelta(minutes=5), 62)
    assert held_out.decision == "attendant"
    lanes.open_by_hand(session, w["exit"], w["user"], "same car as this morning", plate="QVXCAR1",
                       read_id=held_out.read_id)
    session.commit()
    assert (stay.entry_read_id, stay.exit_read_id) == (held_in.read_id, held_out.read_id)
    write_folder(session, w["store"], "QVXCAR1", tmp_path / "me", requested_by="keeper", operator="t")
    data = json.loads((tmp_path / "me" / "records.json").read_text())
    assert [(x["id"], x["linked_by"]) for x in data["reads"]] == [(held_in.read_id, LINKED_ENTRY),
                                                                   (held_out.read_id, LINKED)]
    assert len(data["photos"]) == 2 and len(data["stays"]) == 1
    write_folder(session, w["store"], "QVXCAR7", tmp_path / "lookalike", requested_by="keeper", operator="t")
    other = json.loads((tmp_path / "lookalike" / "records.json").read_text())
    assert other["reads"] == [] and other["photos"] == []
