"""Theft and lane alerts (open -> acknowledged -> resolved) and the hotlist, with CSV import."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ... import plates
from ...records import alerts as alert_service, audit, imports, listings, vehicles
from ...records.errors import ParkingError
from ...records.models import ALERT_KINDS, Alert, HotlistEntry, ParkingSession, User
from ...records.stay_detail import read_view
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import CsvUploadForm, HotlistForm, NoteForm, RequiredNoteForm
from .scope import check_site, chosen_site, get_scoped, me, my_site_ids, my_sites, sites_by_id
from .views_auth import _safe_next
from .views_stays import page_number

PAGE_SIZE = 50


@bp.get("/alerts")
@roles_required("work_alerts")
def alerts():
    state = request.args.get("state", "active")
    kind = request.args.get("kind") or None
    if state not in listings.ALERT_FILTERS or (kind and kind not in ALERT_KINDS):
        abort(422, "Unknown alert state or kind.")
    page = page_number()
    rows, has_next = listings.alert_page(read_db(), my_site_ids(), state=state, kind=kind, limit=PAGE_SIZE,
                                         offset=(page - 1) * PAGE_SIZE)
    return render_template("console/alerts.html", rows=rows, has_next=has_next, page=page, state=state, kind=kind,
                           sites=sites_by_id(), kinds=ALERT_KINDS, states=listings.ALERT_FILTERS,
                           args={k: v for k, v in request.args.items() if k != "page"})


def _alert_page(alert_id: int, resolve_form: RequiredNoteForm | None = None, status: int = 200):
    session = read_db()
    alert = get_scoped(session, Alert, alert_id, "alert")
    people = {u.id: u for u in (session.get(User, i) for i in (alert.acknowledged_by, alert.resolved_by) if i) if u}
    return render_template(
        "console/alert.html", alert=alert, site=sites_by_id()[alert.site_id], read=read_view(session, alert.read_id),
        stay=session.get(ParkingSession, alert.session_id) if alert.session_id else None,
        history=audit.history(session, "alert", alert.id), people=people, ack_form=NoteForm(formdata=None),
        resolve_form=resolve_form or RequiredNoteForm(formdata=None)), status


@bp.get("/alerts/<int:alert_id>")
@roles_required("work_alerts")
def alert_detail(alert_id: int):
    return _alert_page(alert_id)


def _back(alert: Alert):
    return redirect(_safe_next(request.form.get("back")) or url_for("console.alert_detail", alert_id=alert.id), 303)


@bp.post("/alerts/<int:alert_id>/acknowledge")
@roles_required("work_alerts")
def alert_acknowledge(alert_id: int):
    session = db()
    alert = get_scoped(session, Alert, alert_id, "alert")
    form = NoteForm()
    if not form.validate():
        rollback_only()
        flash("; ".join(form.note.errors), "error")
        return _back(alert)
    try:
        alert_service.acknowledge(session, alert, me().id, form.note.data or "")
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
        return _back(alert)
    flash(f"Alert #{alert.id} acknowledged by you.", "success")
    return _back(alert)


@bp.post("/alerts/<int:alert_id>/resolve")
@roles_required("work_alerts")
def alert_resolve(alert_id: int):
    session = db()
    alert = get_scoped(session, Alert, alert_id, "alert")
    form = RequiredNoteForm()
    if not form.validate():
        rollback_only()
        return _alert_page(alert.id, form, 422)
    try:
        alert_service.resolve(session, alert, me().id, form.note.data)
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
        return _back(alert)
    flash(f"Alert #{alert.id} resolved.", "success")
    return redirect(url_for("console.alerts"), 303)


# --- hotlist ----------------------------------------------------------------------------

def _hotlist_page(site, form=None, upload=None, report=None, status=200):
    return render_template("console/hotlist.html", site=site, sites=my_sites(), by_id=sites_by_id(),
                           entries=listings.active_hotlist(read_db(), my_site_ids()),
                           form=form or HotlistForm(formdata=None), upload=upload or CsvUploadForm(formdata=None),
                           report=report), status


@bp.get("/hotlist")
@roles_required("work_alerts")
def hotlist():
    return _hotlist_page(chosen_site())


@bp.post("/hotlist")
@roles_required("manage_hotlist")
def hotlist_add():
    site = chosen_site()
    form = HotlistForm()
    if not form.validate():
        rollback_only()
        return _hotlist_page(site, form=form, status=422)
    if form.all_sites.data and me().role != "admin":
        form.all_sites.errors = ["Only administrators add entries for every site."]
        return _hotlist_page(site, form=form, status=403)
    try:
        plate = plates.validate(form.plate.data)
        vehicles.add_to_hotlist(db(), plate=plate, reason=form.reason.data, user_id=me().id,
                                site_id=None if form.all_sites.data else site.id)
    except plates.PlateError as exc:
        form.plate.errors = [str(exc)]
        rollback_only()
        return _hotlist_page(site, form=form, status=422)
    flash(f"{plate} is on the hotlist: it will be stopped and raise an alert at {'every site' if form.all_sites.data else site.code}.",
          "success")
    return redirect(url_for("console.hotlist", site=site.code), 303)


@bp.post("/hotlist/<int:entry_id>/remove")
@roles_required("manage_hotlist")
def hotlist_remove(entry_id: int):
    session = db()
    entry = session.get(HotlistEntry, entry_id)
    if entry is None:
        abort(404, f"There is no hotlist entry {entry_id}.")
    if entry.site_id is None and me().role != "admin":
        abort(403, "Only administrators remove entries that apply to every site.")
    if entry.site_id is not None:
        check_site(entry.site_id)
    form = NoteForm()
    try:
        vehicles.remove_from_hotlist(session, entry, me().id, form.note.data or "")
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
    else:
        flash(f"{entry.plate} removed from the hotlist.", "success")
    return redirect(url_for("console.hotlist", site=request.args.get("site", "")), 303)


@bp.post("/hotlist/import")
@roles_required("manage_hotlist")
def hotlist_import():
    site = chosen_site()
    upload = CsvUploadForm()
    if not upload.validate():
        rollback_only()
        return _hotlist_page(site, upload=upload, status=422)
    try:
        report = imports.import_hotlist(db(), upload.file.data.read(), site_id=site.id, user_id=me().id)
    except imports.CsvFormatError as exc:
        rollback_only()
        upload.file.errors = [exc.message]
        return _hotlist_page(site, upload=upload, status=422)
    if not report.ok:
        rollback_only()  # all or nothing: fix the rows and upload again
        return _hotlist_page(site, upload=upload, report=report, status=422)
    flash(f"Imported {report.imported} hotlist entries for {site.code}.", "success")
    return redirect(url_for("console.hotlist", site=site.code), 303)
