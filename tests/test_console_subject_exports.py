"""The supervisors' page for data-subject requests: one plate, their own sites, audited, as a ZIP."""
import io
import json
import zipfile

from sqlalchemy import select

from parkinglot.records.models import AuditEvent, User

from .console_world import csrf
from .test_console import as_role, world  # noqa: F401 - the console tests' fixtures


def _export(client, plate: str, requested_by: str):
    return client.post("/subject-exports", data={"plate": plate, "requested_by": requested_by,
                                                 "csrf_token": csrf(client, "/subject-exports")})


def test_supervisor_exports_one_plate_of_their_sites(as_role, world, db):
    sup = as_role("supervisor")
    r = _export(sup, "ab-123", "the keeper, by email of 1 Dec")
    assert r.status_code == 200 and r.mimetype == "application/zip"
    assert "attachment" in r.headers["Content-Disposition"] and "AB123" in r.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(r.data)) as zf:
        names = set(zf.namelist())
        data = json.loads(zf.read("records.json"))
    assert data["plate"] == "AB123" and len(data["reads"]) == 1 and len(data["stays"]) == 1
    assert set(data["photos"]) == names - {"records.json"} and len(data["photos"]) == 1
    text = json.dumps(data)
    assert not any(other in text for other in ("CD456", "ZZ999", "EF789"))
    with db.sessions() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "subject.exported")).one()
        me = s.scalar(select(User).where(User.username == "supervisor"))
    recorded = json.loads(ev.data)
    assert ev.actor_type == "user" and ev.actor_id == str(me.id) and "AB123" not in ev.data
    assert recorded["requested_by"] == "the keeper, by email of 1 Dec" and recorded["sites"] == ["HQ"]
    page = sup.get("/subject-exports")
    assert page.status_code == 200 and "the keeper, by email of 1 Dec" in page.text and "AB123" not in page.text

    # another site's vehicle: nothing of it leaves through this supervisor
    other = _export(sup, "EF789", "the keeper")
    with zipfile.ZipFile(io.BytesIO(other.data)) as zf:
        data = json.loads(zf.read("records.json"))
    assert data["reads"] == [] and data["alerts"] == [] and data["photos"] == []


def test_export_needs_who_asked_and_a_plate_and_the_role(as_role, world, db):
    sup = as_role("supervisor")
    r = _export(sup, "AB123", "")
    assert r.status_code == 422 and "Requested by" in r.text
    r = _export(sup, "AB*123!", "the keeper")
    assert r.status_code == 422 and "illegal characters" in r.text
    attendant = as_role("attendant")
    r = attendant.post("/subject-exports", data={"plate": "AB123", "requested_by": "x" * 5,
                                                 "csrf_token": csrf(attendant)})
    assert r.status_code == 403
    with db.sessions() as s:
        assert not s.scalars(select(AuditEvent).where(AuditEvent.action == "subject.exported")).all()
