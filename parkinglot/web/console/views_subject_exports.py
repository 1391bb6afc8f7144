"""Data-subject access requests: a supervisor exports everything held about one plate, as a ZIP.

The export covers the supervisor's own sites (an administrator's: all of them), records
who asked and who ran it in the audit trail, and is sent only after that record commits.
"""
from __future__ import annotations

import json
from datetime import datetime

from flask import Response, render_template
from sqlalchemy import select

from ...records.audit import Actor
from ...records.errors import ParkingError
from ...records.models import AuditEvent, User
from ...records.privacy.subject_export import write_zip
from ..auth import roles_required
from ..transaction import context, db, read_db, rollback_only
from . import bp
from .forms import SubjectExportForm
from .scope import me, my_site_ids

RECENT = 50


def _recent_exports() -> list[dict]:
    session = read_db()
    rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "subject.exported")
                           .order_by(AuditEvent.id.desc()).limit(RECENT))
    out = []
    for ev in rows:
        data = json.loads(ev.data or "{}")
        who = session.get(User, int(ev.actor_id)) if ev.actor_type == "user" and (ev.actor_id or "").isdigit() else None
        out.append({"at": ev.at, "requested_by": data.get("requested_by", ""),
                    "operator": who.username if who else data.get("operator") or ev.actor_id,
                    "sites": data.get("sites"), "counts": data.get("counts") or {}, "plate": data.get("plate", "")})
    return out


def _page(form: SubjectExportForm, status: int = 200, error: str | None = None):
    if error:
        form.form_errors.append(error)
    return render_template("console/subject_exports.html", form=form, recent=_recent_exports()), status


@bp.get("/subject-exports")
@roles_required("subject_exports")
def subject_exports():
    return _page(SubjectExportForm(formdata=None))


@bp.post("/subject-exports")
@roles_required("subject_exports")
def subject_export_create():
    form = SubjectExportForm()
    if not form.validate():
        rollback_only()
        return _page(form, 422)
    user = me()
    try:
        blob, plate, counts = write_zip(db(), context().evidence, form.plate.data, requested_by=form.requested_by.data,
                                 operator=user.username, actor=Actor.user(user.id), site_ids=my_site_ids())
    except ParkingError as exc:
        rollback_only()
        return _page(form, exc.status, exc.message)
    name = f"subject-export-{plate}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.zip"
    return Response(blob, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
        "X-Records": ",".join(f"{k}={v}" for k, v in sorted(counts.items()))})

