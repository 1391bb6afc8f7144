"""Disputes: opened on a stay (evidence attached automatically), resolved by a supervisor, overdue flagged."""
from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ...billing import disputes as dispute_service
from ...records import audit, listings
from ...records.errors import ParkingError
from ...records.models import Dispute, Evidence, ParkingSession, Payment, Site, User
from ...records.types import utcnow
from ...records.wallclock import localize
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .formatting import to_minor
from .forms import DisputeOpenForm, DisputeResolveForm
from .scope import get_scoped, me, my_site_ids, sites_by_id
from .views_stays import page_number

PAGE_SIZE = 50


def is_overdue(dispute: Dispute, site: Site, now) -> bool:
    return dispute.status == "open" and dispute.opened_at < now - timedelta(days=site.dispute_review_days)


@bp.get("/disputes")
@roles_required("open_dispute")
def disputes():
    state = request.args.get("state", "open")
    if state not in listings.DISPUTE_FILTERS:
        abort(422, "Unknown dispute state.")
    session, page, now = read_db(), page_number(), utcnow()
    rows, has_next = listings.disputes_page(session, my_site_ids(), state=state, limit=PAGE_SIZE,
                                            offset=(page - 1) * PAGE_SIZE)
    stays = {s.id: s for s in session.scalars(select(ParkingSession).where(
        ParkingSession.id.in_([d.session_id for d in rows])))} if rows else {}
    overdue_count = len(dispute_service.overdue(session, my_site_ids(), now))
    return render_template("console/disputes.html", rows=rows, has_next=has_next, page=page, state=state,
                           stays=stays, sites=sites_by_id(), now=now, overdue_count=overdue_count,
                           is_overdue=is_overdue, args={k: v for k, v in request.args.items() if k != "page"})


@bp.post("/stays/<int:stay_id>/disputes")
@roles_required("open_dispute")
def dispute_open(stay_id: int):
    session = db()
    stay = get_scoped(session, ParkingSession, stay_id, "stay")
    form = DisputeOpenForm()
    if not form.validate():
        rollback_only()
        flash("Describe what the driver disputes (at least 3 characters).", "error")
        return redirect(url_for("console.stay", stay_id=stay_id) + "#disp-h", 303)
    try:
        dispute = dispute_service.open_dispute(session, stay, user_id=me().id, reason=form.reason.data)
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
        return redirect(url_for("console.stay", stay_id=stay_id), 303)
    flash(f"Dispute #{dispute.id} opened; the stay's photos, reads and fee breakdown are attached.", "success")
    return redirect(url_for("console.dispute", dispute_id=dispute.id), 303)


def _page(dispute_id: int, form: DisputeResolveForm | None = None, error: str | None = None, status: int = 200):
    session = read_db()
    dispute = get_scoped(session, Dispute, dispute_id, "dispute")
    site = sites_by_id()[dispute.site_id]
    ev = dispute.evidence or {}
    shas = [r["photo_sha256"] for r in (ev.get("entry"), ev.get("exit")) if r and r.get("photo_sha256")]
    photos = {e.sha256: e for e in session.scalars(select(Evidence).where(Evidence.sha256.in_(shas)))} if shas else {}
    people = {u.id: u for u in session.scalars(select(User).where(
        User.id.in_([i for i in (dispute.opened_by, dispute.resolved_by) if i])))}
    movements = list(session.scalars(select(Payment).where(Payment.dispute_id == dispute.id).order_by(Payment.id))) \
        if dispute.status == "resolved" else []
    return render_template(
        "console/dispute.html", d=dispute, site=site, ev=ev, photos=photos, people=people, movements=movements,
        stay=session.get(ParkingSession, dispute.session_id), overdue=is_overdue(dispute, site, utcnow()),
        deadline=dispute.opened_at + timedelta(days=site.dispute_review_days),
        history=audit.history(session, "dispute", dispute.id), form=form or DisputeResolveForm(formdata=None),
        error=error), status


@bp.get("/disputes/<int:dispute_id>")
@roles_required("open_dispute")
def dispute(dispute_id: int):
    return _page(dispute_id)


@bp.post("/disputes/<int:dispute_id>/resolve")
@roles_required("resolve_dispute")
def dispute_resolve(dispute_id: int):
    session = db()
    d = get_scoped(session, Dispute, dispute_id, "dispute")
    site = session.get(Site, d.site_id)
    form = DisputeResolveForm()
    if not form.validate():
        rollback_only()
        return _page(dispute_id, form, status=422)
    adjust, refund = form.outcome.data == "adjust", form.outcome.data == "refund"
    try:
        dispute_service.resolve_dispute(
            session, d, user_id=me().id, outcome=form.outcome.data, note=form.note.data,
            corrected_entered_at=localize(form.corrected_entered_at.data, site.timezone)
            if adjust and form.corrected_entered_at.data else None,
            corrected_exited_at=localize(form.corrected_exited_at.data, site.timezone)
            if adjust and form.corrected_exited_at.data else None,
            refund_minor=to_minor(form.refund.data, site.currency) if refund else None,
            refund_method=form.refund_method.data)
    except ParkingError as exc:
        rollback_only()
        return _page(dispute_id, form, error=exc.message, status=409 if exc.status == 409 else 422)
    flash(f"Dispute #{d.id} resolved: {d.outcome}.", "success")
    return redirect(url_for("console.dispute", dispute_id=d.id), 303)
