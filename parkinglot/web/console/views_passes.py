"""Visitor passes: a permit holder's visitor (plate + time window), listed, revocable, visibly expired."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ...records import listings, permits as permit_service
from ...records.errors import InvalidInput, ParkingError
from ...records.models import Site, VisitorPass
from ...records.types import utcnow
from ...records.wallclock import localize
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import RevokeForm, VisitorPassForm
from .scope import chosen_site, get_scoped, me, my_sites
from .views_stays import page_number

PAGE_SIZE = 50


def _page(site: Site, form=None, status=200):
    show = request.args.get("show", "current")
    if show not in listings.PASS_FILTERS:
        abort(422, "Unknown filter.")
    page = page_number()
    now = utcnow()
    rows, has_next = listings.visitor_passes(read_db(), site.id, now, show=show, limit=PAGE_SIZE,
                                             offset=(page - 1) * PAGE_SIZE)
    return render_template("console/passes.html", site=site, sites=my_sites(), rows=rows, has_next=has_next,
                           page=page, show=show, now=now, status_of=lambda vp: permit_service.pass_status(vp, now),
                           form=form or VisitorPassForm(formdata=None), revoke_form=RevokeForm(formdata=None),
                           terms=permit_service.pass_terms(site),
                           args={k: v for k, v in request.args.items() if k != "page"}), status


@bp.get("/passes")
@roles_required("visitor_passes")
def passes():
    return _page(chosen_site())


@bp.post("/passes")
@roles_required("visitor_passes")
def pass_create():
    site = chosen_site()
    form = VisitorPassForm()
    if not form.validate():
        rollback_only()
        return _page(site, form, 422)
    session = db()
    try:
        permit_id = None
        if form.permit.data:
            permit_id = permit_service.current_permit(session, site.id, form.permit.data.strip()).id
        vp = permit_service.create_visitor_pass(
            session, session.get(Site, site.id), plate=form.plate.data,
            valid_from=localize(form.valid_from.data, site.timezone), valid_to=localize(form.valid_to.data, site.timezone),
            permit_id=permit_id, note=form.note.data or "", user_id=me().id)
    except ParkingError as exc:
        rollback_only()
        form.form_errors.append(exc.message)
        return _page(site, form, 409 if exc.status == 409 else 422)
    flash(f"Visitor pass for {vp.plate} registered.", "success")
    return redirect(url_for("console.passes", site=site.code), 303)


@bp.post("/passes/<int:pass_id>/revoke")
@roles_required("visitor_passes")
def pass_revoke(pass_id: int):
    session = db()
    vp = get_scoped(session, VisitorPass, pass_id, "visitor pass")
    form = RevokeForm()
    try:
        if not form.validate():
            raise InvalidInput("Say why the pass is revoked: " + "; ".join(form.reason.errors))
        permit_service.revoke_visitor_pass(session, vp, user_id=me().id, reason=form.reason.data)
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
    else:
        flash(f"Visitor pass for {vp.plate} revoked.", "success")
    site = next(s for s in my_sites() if s.id == vp.site_id)
    return redirect(url_for("console.passes", site=site.code), 303)
