"""Retention, data-subject export, and the plate-free audit trail."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from parkinglot.barrier import events
from parkinglot.records import alerts, audit, retention, stays
from parkinglot.records.evidence import EvidenceStore
from parkinglot.records.models import AuditEvent, Evidence, ParkingSession, PlateRead
from parkinglot.records.subject_export import export_plate

from .factories import T0, make_site
from .test_evidence import jpeg_bytes


@pytest.fixture
def world(db, session, tmp_path):
    site, entry, exit_ = make_site(session)
    session.commit()
    return {"site": site, "entry": entry, "exit": exit_, "store": EvidenceStore(tmp_path / "ev")}


def visit(session, w, plate, at, minutes=30, seed=0, leave=True):
    out = []
    for lane, when, n in ((w["entry"], at, 0), (w["exit"], at + timedelta(minutes=minutes), 1)):
        if lane is w["exit"] and not leave:
            break
        ev = events.LaneEvent(lane_id=lane.id, captured_at=when, received_at=when,
                              reading=events.Reading(plate=plate, raw_text=plate, confidence=0.95),
                              frames=(events.Frame(jpeg_bytes(seed * 10 + n), "image/jpeg", 60, 40),))
        out.append(events.process(session, w["store"], ev).reply)
        session.commit()
    return out


def test_audit_trail_holds_no_plates(world, session):
    visit(session, world, "SECRET1", T0)
    texts = " ".join(e.data for e in session.scalars(select(AuditEvent)))
    assert "SECRET1" not in texts and "hmac:" in texts
    assert audit.plate_digest("SECRET1") in texts  # an investigator with the key can still confirm


def test_retention_purges_old_visitors_but_keeps_protected_records(world, session):
    w = world
    old = visit(session, w, "OLD1", T0, seed=1)
    inside = visit(session, w, "INSIDE1", T0, seed=2, leave=False)
    alerted = visit(session, w, "ALERT1", T0, seed=3)
    alerts.raise_alert(session, site_id=w["site"].id, kind="hotlist", plate="ALERT1",
                       session_id=alerted[0].session_id, message="check")
    recent = visit(session, w, "NEW1", T0 + timedelta(days=95), seed=4)
    session.commit()
    now = T0 + timedelta(days=100)

    dry = retention.run(session, w["store"], days=90, now=now, dry_run=True)
    session.commit()
    assert (dry.reads, dry.stays, dry.images) == (2, 1, 2)
    assert session.scalar(select(PlateRead.plate).where(PlateRead.id == old[0].read_id)) == "OLD1"

    real = retention.run(session, w["store"], days=90, now=now, dry_run=False)
    session.commit()
    assert (real.reads, real.stays, real.images) == (2, 1, 2)
    purged = session.get(PlateRead, old[0].read_id)
    assert purged.plate == "" and purged.evidence_sha256 is None and purged.no_plate_reason == retention.PURGED
    assert session.get(ParkingSession, old[0].session_id).plate == ""
    assert session.get(ParkingSession, old[0].session_id).exited_at is not None  # times and money stay
    kept = {r.plate for r in session.scalars(select(PlateRead)) if r.plate}
    assert kept == {"INSIDE1", "ALERT1", "NEW1"}
    files = [e for e in session.scalars(select(Evidence)) if e.purged_at is not None]
    assert len(files) == 2 and not any(w["store"].path_for(e.sha256, e.content_type).exists() for e in files)
    assert audit.verify(session).ok
    actions = [e.action for e in session.scalars(select(AuditEvent))]
    assert "retention.dry_run" in actions and "retention.purged" in actions
    again = retention.run(session, w["store"], days=90, now=now, dry_run=False)
    assert (again.reads, again.stays, again.images) == (0, 0, 0)


def test_unpaid_balance_is_kept(world, session):
    w = world
    r = visit(session, w, "OWES1", T0, seed=5, leave=False)
    stay = session.get(ParkingSession, r[0].session_id)
    stays.close_stay(session, stay, exited_at=T0 + timedelta(hours=1), fee_minor=500, reason="attendant_override")
    session.commit()
    report = retention.run(session, w["store"], days=90, now=T0 + timedelta(days=200), dry_run=True)
    assert report.reads == 0 and report.stays == 0


def test_subject_export(world, session, tmp_path):
    w = world
    visit(session, w, "ME123", T0, seed=6)
    visit(session, w, "OTHER9", T0, seed=7)
    counts = export_plate(session, w["store"], "me-123", tmp_path / "export")
    session.commit()
    data = json.loads((tmp_path / "export" / "records.json").read_text())
    assert counts["reads"] == 2 and counts["stays"] == 1 and len(data["photos"]) == 2
    assert all(r["plate"] == "ME123" for r in data["reads"])
    assert "OTHER9" not in (tmp_path / "export" / "records.json").read_text()
    assert any(e.action == "subject.exported" for e in session.scalars(select(AuditEvent)))
