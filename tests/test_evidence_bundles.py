"""Evidence bundles (issue 21, part 2): a stay's record as a signed ZIP, verified with no database.

The stay is made through the real lane path (photos, reads, decisions, a barrier command),
priced under a tariff version, paid and partly refunded. The attacks change a file inside
the bundle, or rewrite it and sign it again with another key.
"""
from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from click.testing import CliRunner

from parkinglot.barrier import events
from parkinglot.billing import disputes, fees, payments, tariffs
from parkinglot.context import build_context
from parkinglot.db import transaction
from parkinglot.evidence import export as bundles
from parkinglot.evidence import signing
from parkinglot.evidence.verify import verify_bundle
from parkinglot.records import audit, users
from parkinglot.records.errors import Forbidden, InvalidInput, NotFound
from parkinglot.records.models import Alert, AuditEvent, ParkingSession
from parkinglot.records.privacy import retention
from parkinglot.records.types import utcnow

from .factories import make_site
from .test_disputes import HOURLY
from .test_evidence import jpeg_bytes


@pytest.fixture
def ctx(db, tmp_path):
    c = build_context({"DATABASE_URL": db.url, "EVIDENCE_DIR": str(tmp_path / "evidence")}, tmp_path / "instance")
    yield c
    c.close()


def _event(ctx, lane, plate, at, n):
    frame = events.Frame(jpeg_bytes(n), "image/jpeg", 60, 40)
    reading = events.Reading(plate=plate, raw_text=plate, confidence=0.95)
    with transaction(ctx.sessions) as s:
        return events.process(s, ctx.evidence, events.LaneEvent(
            lane_id=lane, captured_at=at, received_at=at, reading=reading, event_id=f"ev-{n}", frames=(frame,))).reply


@pytest.fixture
def world(ctx):
    now = utcnow().replace(microsecond=0)
    with transaction(ctx.sessions) as s:
        site, entry, exit_ = make_site(s)
        tariffs.create_version(s, site, code="STD", name="Standard", rules=HOURLY,
                               effective_from=now - timedelta(days=2), make_default=True)
        boss = users.create_user(s, username="sup", password="harbour-lantern-test-9", role="supervisor", sites=[site])
        ids = {"site": site.id, "entry": entry.id, "exit": exit_.id, "boss": boss.id}
    entered = _event(ctx, ids["entry"], "EVD123", now - timedelta(hours=3), 1)
    assert entered.decision == "open"
    with transaction(ctx.sessions) as s:
        stay = s.get(ParkingSession, entered.session_id)
        site = stay.site
        due = fees.fee_status(s, site, stay, now - timedelta(hours=1, minutes=5))
        payments.record_payment(s, site, amount_minor=due.due_minor, method="card", reference="pay-1", stay=stay,
                                paid_until=due.paid_until)
    left = _event(ctx, ids["exit"], "EVD123", now - timedelta(hours=1), 2)
    assert left.decision == "open"
    with transaction(ctx.sessions) as s:
        stay = s.get(ParkingSession, entered.session_id)
        payments.refund(s, stay.site, stay, amount_minor=100, reason="goodwill", reference="ref-1",
                        user_id=ids["boss"])
    ids["stay"] = entered.session_id
    return ids


def _export(ctx, kind, ident, **kw):
    kw.setdefault("exported_by", "sup")
    kw.setdefault("actor", audit.Actor.user(1))
    return bundles.export(ctx, kind, ident, **kw)


def _rewrite(blob: bytes, change) -> bytes:
    """The bundle with ``change(name, data) -> data`` applied to every member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, change(name, src.read(name)))
    return out.getvalue()


def _save(tmp_path, blob, name="bundle.zip"):
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def test_a_stay_bundle_holds_the_record_and_verifies(ctx, world, tmp_path):
    blob, req, cp = _export(ctx, "stay", world["stay"], reason="insurance claim 77")
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        records = json.loads(zf.read("records.json"))
        summary = zf.read("summary.html").decode()
    assert {"manifest.json", "manifest.sig", "public_key.pem", "checkpoint.json", "records.json",
            "audit/events.jsonl", "summary.html"} <= names
    assert len(manifest["photos"]) == 2 and all(p["file"] in names for p in manifest["photos"])
    assert len(records["reads"]) == 2 and len(records["decisions"]) == 2 and len(records["barrier_commands"]) == 2
    assert records["tariff_version"]["code"] == "STD" and records["fee"]["quote"]["lines"]
    assert len(records["payments"]) == 1 and len(records["refunds"]) == 1
    assert manifest["checkpoint"]["last_id"] == cp.last_id and manifest["purged"] == []
    assert "EVD123" in summary and "Standard" in summary and "parkinglot evidence verify" in summary
    with ctx.sessions() as s:  # audited as an export by a named person, covered by the checkpoint
        ev = s.query(AuditEvent).filter_by(action="evidence.exported").one()
        assert json.loads(ev.data)["by"] == "sup" and ev.actor_type == "user" and ev.id <= cp.last_id
        assert ev.id in manifest["involved_events"]
    report = verify_bundle(_save(tmp_path, blob), public_key_pem=ctx.signer.public_pem.encode())
    assert report.ok, report.problems
    assert report.proves[0].startswith("these 2 photo(s) and ")
    assert f"not altered since checkpoint {cp.seq} signed at {cp.at}" in report.proves[0]
    assert sum("is named by audit event" in line for line in report.proves) == 2


def test_a_tampered_photo_inside_the_bundle_fails(ctx, world, tmp_path):
    blob, _, _ = _export(ctx, "stay", world["stay"])
    flipped = _rewrite(blob, lambda n, d: d[:-3] + bytes([d[-3] ^ 1]) + d[-2:] if n.startswith("photos/") else d)
    report = verify_bundle(_save(tmp_path, flipped))
    assert not report.ok
    assert any("ALTERED" in p and "photos/" in p for p in report.problems)
    assert any("does not match the SHA-256 stored when it was taken" in p for p in report.problems)


def test_an_edited_event_with_a_fixed_up_manifest_fails(ctx, world, tmp_path):
    """The attacker edits an event and updates the manifest's file hash: the export signature
    and the event's own hash both give it away."""
    import hashlib

    blob, _, _ = _export(ctx, "stay", world["stay"])
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        lines = zf.read("audit/events.jsonl").decode().splitlines()
    first = json.loads(lines[0])
    first["data"] = first["data"].replace('"open"', '"deny"') if '"open"' in first["data"] else '{"x":1}'
    edited = ("\n".join([json.dumps(first, sort_keys=True)] + lines[1:]) + "\n").encode()

    def change(name, data):
        if name == "audit/events.jsonl":
            return edited
        if name == "manifest.json":
            m = json.loads(data)
            m["files"]["audit/events.jsonl"] = hashlib.sha256(edited).hexdigest()
            return json.dumps(m).encode()
        return data

    report = verify_bundle(_save(tmp_path, _rewrite(blob, change)))
    assert not report.ok
    assert any("does not match its signature" in p for p in report.problems)
    assert any(f"event {first['id']}: content does not match its hash" in p for p in report.problems)


def test_a_bundle_re_signed_with_another_key_fails_against_the_published_key(ctx, world, tmp_path):
    blob, _, _ = _export(ctx, "stay", world["stay"])
    forger = signing.load_or_create(tmp_path / "forger.pem")

    def change(name, data):
        if name == "public_key.pem":
            return forger.public_pem.encode()
        if name == "manifest.sig":
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                return forger.sign(zf.read("manifest.json")).encode()
        return data

    path = _save(tmp_path, _rewrite(blob, change))
    assert not verify_bundle(path).ok  # the checkpoint's signature is still the real key's
    pinned = verify_bundle(path, public_key_pem=ctx.signer.public_pem.encode())
    assert not pinned.ok and any("not the published key" in p for p in pinned.problems)


def test_an_added_file_and_a_non_bundle_are_refused(ctx, world, tmp_path):
    blob, _, _ = _export(ctx, "stay", world["stay"])
    out = io.BytesIO(blob)
    with zipfile.ZipFile(out, "a") as zf:
        zf.writestr("photos/extra.jpg", b"planted")
    report = verify_bundle(_save(tmp_path, out.getvalue()))
    assert not report.ok and any("not in its manifest" in p for p in report.problems)
    junk = _save(tmp_path, b"not a zip", "junk.zip")
    assert verify_bundle(junk).problems[0].startswith("not a readable ZIP file")


def test_a_malformed_manifest_is_a_clear_failure_not_a_traceback(ctx, world, tmp_path):
    blob, _, _ = _export(ctx, "stay", world["stay"])

    def change(name, data):
        if name == "manifest.json":
            m = json.loads(data)
            m["photos"] = [{"sha256": 5}]
            return json.dumps(m).encode()
        return data

    report = verify_bundle(_save(tmp_path, _rewrite(blob, change)))
    assert not report.ok and "malformed" in report.problems[0]


def test_dispute_and_alert_bundles_and_the_scope(ctx, world, tmp_path):
    with transaction(ctx.sessions) as s:
        stay = s.get(ParkingSession, world["stay"])
        dispute_id = disputes.open_dispute(s, stay, user_id=world["boss"], reason="charged twice").id
        alert = Alert(site_id=world["site"], kind="hotlist", plate="EVD123", message="hotlisted EVD123",
                      session_id=stay.id)
        s.add(alert)
        s.flush()
        alert_id = alert.id
    for kind, ident in (("dispute", dispute_id), ("alert", alert_id)):
        blob, req, _ = _export(ctx, kind, ident)
        assert req.kind == kind and verify_bundle(_save(tmp_path, blob, f"{kind}.zip")).ok
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            records = json.loads(zf.read("records.json"))
        assert records["stay"]["id"] == world["stay"] and len(records["reads"]) == 2
    with pytest.raises(Forbidden):
        _export(ctx, "stay", world["stay"], site_ids=[world["site"] + 1])
    with pytest.raises(NotFound):
        _export(ctx, "stay", 999999)
    with pytest.raises(InvalidInput):
        _export(ctx, "payment", 1)
    with pytest.raises(InvalidInput):
        _export(ctx, "stay", "abc")


def test_a_purged_stay_exports_what_remains_and_says_what_was_purged_and_when(ctx, world, tmp_path):
    with transaction(ctx.sessions) as s:  # the goodwill refund is paid back: nothing owed, so it may be forgotten
        stay = s.get(ParkingSession, world["stay"])
        payments.record_payment(s, stay.site, amount_minor=100, method="cash", reference="pay-2", stay=stay)
    with transaction(ctx.sessions) as s:
        report = retention.run(s, ctx.evidence, days=1, dry_run=False, now=utcnow() + timedelta(days=3))
        assert report.stays == 1 and report.images == 2
    blob, _, _ = _export(ctx, "stay", world["stay"])
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert not [n for n in zf.namelist() if n.startswith("photos/")]
        summary = zf.read("summary.html").decode()
    assert manifest["photos"] == [] and "EVD123" not in summary
    whats = [p["what"] for p in manifest["purged"]]
    assert any("stay" in w and "plate" in w for w in whats) and sum("read" in w for w in whats) == 2
    assert all(p["purged_at"] for p in manifest["purged"])
    result = verify_bundle(_save(tmp_path, blob))
    assert result.ok, result.problems
    assert any(line.startswith("removed by retention at ") for line in result.proves)
    assert "Removed by the retention policy" in summary


def test_cli_export_then_verify_without_the_database(ctx, world, tmp_path, monkeypatch, db):
    from parkinglot.cli import main

    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("PARKINGLOT_DATABASE_URL", db.url)
    monkeypatch.setenv("PARKINGLOT_EVIDENCE_DIR", str(tmp_path / "evidence"))
    out = tmp_path / "stay.zip"
    r = CliRunner().invoke(main, ["evidence", "export", "--stay", str(world["stay"]), "-o", str(out), "--by", "clerk"])
    assert r.exit_code == 0, r.output
    assert "audit events up to checkpoint" in r.output
    again = CliRunner().invoke(main, ["evidence", "export", "--stay", str(world["stay"]), "-o", str(out)])
    assert again.exit_code != 0 and "exists" in again.output
    both = CliRunner().invoke(main, ["evidence", "export", "--stay", "1", "--alert", "1", "-o", str(tmp_path / "x")])
    assert both.exit_code != 0 and "exactly one" in both.output
    missing = CliRunner().invoke(main, ["evidence", "export", "--stay", "999999", "-o", str(tmp_path / "y.zip")])
    assert missing.exit_code != 0 and "no stay 999999" in missing.output
    monkeypatch.setenv("PARKINGLOT_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("PARKINGLOT_INSTANCE_PATH", str(tmp_path / "elsewhere"))
    ok = CliRunner().invoke(main, ["evidence", "verify", str(out)])
    assert ok.exit_code == 0 and "VERIFIED" in ok.output and "these 2 photo(s)" in ok.output, ok.output
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_rewrite(out.read_bytes(), lambda n, d: b"{}" if n == "records.json" else d))
    failed = CliRunner().invoke(main, ["evidence", "verify", str(bad)])
    assert failed.exit_code == 1 and "records.json was ALTERED" in failed.output
