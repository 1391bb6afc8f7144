"""The "Export evidence bundle" button on the stay, dispute and alert pages (issue 21, part 2).

Supervisors only, their own sites only; the export is audited under their name and the
ZIP verifies with no database. Runs on SQLite and PostgreSQL (the ``db`` fixture).
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from parkinglot.billing import disputes
from parkinglot.evidence.verify import verify_bundle
from parkinglot.records.models import AuditEvent, ParkingSession, User

from .console_world import build, csrf, login


@pytest.fixture
def world(db, app, monkeypatch):
    from werkzeug.security import generate_password_hash

    from parkinglot.records import users

    monkeypatch.setattr(users, "generate_password_hash", lambda p: generate_password_hash(p, "pbkdf2:sha256:1000"))
    return build(db, app)


def client_for(app, username):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def _export(client, kind, ident):
    return client.post(f"/evidence-bundles/{kind}/{ident}", data={"csrf_token": csrf(client)})


def test_a_supervisor_exports_a_stay_from_its_page_and_it_verifies(app, world, db, tmp_path):
    boss = client_for(app, "supervisor")
    page = boss.get(f"/stays/{world.closed_stay}")
    assert 'data-test="export-evidence"' in page.text
    r = _export(boss, "stay", world.closed_stay)
    assert r.status_code == 200, r.text[:300]
    assert r.mimetype == "application/zip" and "attachment" in r.headers["Content-Disposition"]
    path = tmp_path / "b.zip"
    path.write_bytes(r.data)
    report = verify_bundle(path)
    assert report.ok, report.problems
    assert report.proves[0].startswith("these 2 photo(s)")
    with db.sessions() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "evidence.exported")).one()
        boss_id = s.scalar(select(User.id).where(User.username == "supervisor"))
    assert (ev.actor_type, ev.actor_id, ev.entity_type, ev.entity_id) == ("user", str(boss_id), "stay",
                                                                          str(world.closed_stay))
    assert json.loads(ev.data)["by"] == "supervisor"


def test_dispute_and_alert_pages_export_too(app, world, db):
    with db.sessions() as s:
        stay = s.get(ParkingSession, world.closed_stay)
        dispute_id = disputes.open_dispute(s, stay, user_id=None, reason="charged twice").id
        s.commit()
    boss = client_for(app, "supervisor")
    for kind, ident, page in (("dispute", dispute_id, f"/disputes/{dispute_id}"),
                              ("alert", world.alert, f"/alerts/{world.alert}")):
        assert 'data-test="export-evidence"' in boss.get(page).text
        r = _export(boss, kind, ident)
        assert r.status_code == 200 and r.data[:2] == b"PK", (kind, r.status_code)


def test_the_button_is_for_supervisors_and_their_own_sites(app, world, db):
    attendant = client_for(app, "attendant")
    assert 'data-test="export-evidence"' not in attendant.get(f"/stays/{world.closed_stay}").text
    assert _export(attendant, "stay", world.closed_stay).status_code == 403
    boss = client_for(app, "supervisor")
    assert _export(boss, "stay", world.other_stay).status_code == 403
    assert _export(boss, "alert", world.other_alert).status_code == 403
    assert _export(boss, "stay", 987654).status_code == 404
    assert _export(boss, "payment", 1).status_code == 404
    no_token = boss.post(f"/evidence-bundles/stay/{world.closed_stay}")
    assert no_token.status_code == 400
    with db.sessions() as s:
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "evidence.exported")).all() == []
