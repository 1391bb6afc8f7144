"""Evidence bundles from the console: the button on a stay's, a dispute's and an alert's page.

A POST (CSRF-protected, it writes an audit record): the subject must be at one of the
user's sites; the export is audited under the user's name and covered by a new signed
checkpoint before the ZIP is sent (``evidence.export``).
"""
from __future__ import annotations

from flask import Response, abort, flash, redirect, url_for

from ...evidence import export as bundles
from ...evidence.signing import SigningKeyError
from ...records.audit import Actor
from ...records.errors import ParkingError
from ...records.models import Alert, Dispute, ParkingSession
from ..auth import roles_required
from ..transaction import context, read_db
from . import bp
from .scope import get_scoped, me, my_site_ids

PAGES = {"stay": (ParkingSession, "console.stay", "stay_id"), "dispute": (Dispute, "console.dispute", "dispute_id"),
         "alert": (Alert, "console.alert_detail", "alert_id")}


@bp.post("/evidence-bundles/<kind>/<int:ident>")
@roles_required("export_evidence")
def evidence_export(kind: str, ident: int):
    if kind not in PAGES:
        abort(404, "Evidence bundles are made of a stay, a dispute or an alert.")
    model, endpoint, arg = PAGES[kind]
    get_scoped(read_db(), model, ident, kind)  # 404 / 403 before anything is recorded
    user = me()
    try:
        blob, req, cp = bundles.export(context(), kind, ident, exported_by=user.username, actor=Actor.user(user.id),
                                       site_ids=my_site_ids())
    except (ParkingError, SigningKeyError) as exc:
        flash(f"No evidence bundle: {getattr(exc, 'message', None) or exc}", "error")
        return redirect(url_for(endpoint, **{arg: ident}), 303)
    return Response(blob, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{bundles.filename(req)}"', "Cache-Control": "no-store",
        "X-Checkpoint": f"{cp.seq}"})
