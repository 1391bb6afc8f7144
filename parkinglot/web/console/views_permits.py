"""Permits (create, edit = new version, suspend, renew, CSV import) and the owner's vehicle lock."""
from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, request, url_for

from ... import plates
from ...billing import fees
from ...records import imports, listings, permits as permit_service, vehicles
from ...records.errors import ParkingError
from ...records.models import Site
from ...records.types import utcnow
from ...records.wallclock import day_end, day_start, zone
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import CsvUploadForm, LockForm, NoteForm, PermitForm, RenewForm, options, plates_from_text
from .scope import chosen_site, me, my_sites
from .views_stays import page_number

PAGE_SIZE = 50
STATUS_ACTIONS = {"suspended": "suspended", "active": "reactivated", "cancelled": "cancelled"}


def rate_choices(site: Site) -> list[tuple[str, str]]:
    """The rates of the site's tariff in force now (a permit prices covered time with one of them)."""
    version = fees.current_tariff(read_db(), site, utcnow())
    rates = (version.rules.get("rates") or {}) if version else {}
    return [("", "Free parking")] + [(name, f"{r.get('label') or name} ({name})") for name, r in rates.items()]


def _list_page(site: Site, form=None, upload=None, report=None, lock_form=None, status=200):
    session = read_db()
    page = page_number()
    query = request.args.get("q", "")
    rows, has_next = listings.current_permits(session, site.id, query=query, limit=PAGE_SIZE,
                                              offset=(page - 1) * PAGE_SIZE)
    now = utcnow()
    return render_template(
        "console/permits.html", site=site, sites=my_sites(), rows=rows, has_next=has_next, page=page, q=query,
        status_of=lambda p: permit_service.permit_status(p, now, site.timezone),
        locks=listings.active_locks(session, site.id), upload=upload or CsvUploadForm(formdata=None), report=report,
        lock_form=lock_form or LockForm(formdata=None), release_form=NoteForm(formdata=None),
        args={k: v for k, v in request.args.items() if k != "page"}), status


@bp.get("/permits")
@roles_required("view_permits")
def permits():
    return _list_page(chosen_site())


def _form_page(site: Site, form: PermitForm, permit=None, status=200):
    return render_template("console/permit_form.html", site=site, form=form, permit=permit), status


def _to_utc(form: PermitForm, site: Site) -> dict:
    return {"holder": form.holder.data.strip(), "vehicles": plates_from_text(form.vehicles.data),
            "valid_from": day_start(form.valid_from.data, site.timezone),
            "valid_to": day_end(form.valid_to.data, site.timezone),
            "hours": imports.parse_hours(form.hours.data or ""), "rate": form.rate.data or None}


@bp.route("/permits/new", methods=["GET", "POST"])
@roles_required("manage_permits")
def permit_new():
    site = chosen_site()
    form = PermitForm(formdata=request.form if request.method == "POST" else None)
    form.rate.choices = options(rate_choices(site))
    if request.method == "GET":
        today = utcnow().astimezone(zone(site.timezone)).date()
        form.valid_from.data, form.valid_to.data = today, today + timedelta(days=364)
        return _form_page(site, form)
    if not form.validate():
        rollback_only()
        return _form_page(site, form, status=422)
    try:
        permit = permit_service.create_permit(db(), db().get(Site, site.id), number=form.number.data,
                                              user_id=me().id, **_to_utc(form, site))
    except ParkingError as exc:
        rollback_only()
        form.form_errors.append(exc.message)
        return _form_page(site, form, status=422 if exc.status != 409 else 409)
    flash(f"Permit {permit.number} created for {', '.join(v.plate for v in permit.vehicles)}.", "success")
    return redirect(url_for("console.permit", site_code=site.code, number=permit.number), 303)


@bp.get("/permits/<site_code>/<number>")
@roles_required("view_permits")
def permit(site_code: str, number: str):
    site = chosen_site(site_code)
    session = read_db()
    history = permit_service.permit_history(session, site.id, number)
    if not history:
        permit_service.current_permit(session, site.id, number)  # raises the 404
    current = history[0]
    now = utcnow()
    return render_template(
        "console/permit.html", site=site, p=current, history=history,
        status=permit_service.permit_status(current, now, site.timezone),
        locks=listings.active_locks(session, site.id, [v.plate for v in current.vehicles]),
        renew_form=RenewForm(formdata=None, valid_to=(current.valid_to.astimezone(zone(site.timezone)).date()
                                                      + timedelta(days=365))),
        lock_form=LockForm(formdata=None), release_form=NoteForm(formdata=None), hours_text=imports.format_hours)


@bp.route("/permits/<site_code>/<number>/edit", methods=["GET", "POST"])
@roles_required("manage_permits")
def permit_edit(site_code: str, number: str):
    site = chosen_site(site_code)
    current = permit_service.current_permit(read_db(), site.id, number)
    form = PermitForm(formdata=request.form if request.method == "POST" else None)
    form.rate.choices = options(rate_choices(site))
    if request.method == "GET":
        tz = zone(site.timezone)
        form.number.data, form.holder.data = current.number, current.holder
        form.vehicles.data = "\n".join(v.plate for v in current.vehicles)
        form.valid_from.data = current.valid_from.astimezone(tz).date()
        form.valid_to.data = (current.valid_to.astimezone(tz) - timedelta(microseconds=1)).date()
        form.hours.data, form.rate.data = imports.format_hours(current.hours), current.rate or ""
        return _form_page(site, form, current)
    form.number.data = current.number  # the number identifies the permit; it is not edited
    if not form.validate():
        rollback_only()
        return _form_page(site, form, current, status=422)
    try:
        new = permit_service.revise_permit(db(), db().get(Site, site.id), number, user_id=me().id,
                                           **_to_utc(form, site))
    except ParkingError as exc:
        rollback_only()
        form.form_errors.append(exc.message)
        return _form_page(site, form, current, status=422)
    flash(f"Permit {number} saved as version {new.version}; version {current.version} is kept in its history.",
          "success")
    return redirect(url_for("console.permit", site_code=site.code, number=number), 303)


def _revise(site: Site, number: str, done: str, *, action: str, **changes):
    """One new version of a permit from a button (suspend, renew...), then back to the permit's page."""
    try:
        permit_service.revise_permit(db(), db().get(Site, site.id), number, user_id=me().id, action=action,
                                     **changes)
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
    else:
        flash(done, "success")
    return redirect(url_for("console.permit", site_code=site.code, number=number), 303)


def _refuse(site: Site, number: str, message: str):
    rollback_only()
    flash(message, "error")
    return redirect(url_for("console.permit", site_code=site.code, number=number), 303)


@bp.post("/permits/<site_code>/<number>/status")
@roles_required("manage_permits")
def permit_status(site_code: str, number: str):
    site = chosen_site(site_code)
    status = request.form.get("status", "")
    if status not in STATUS_ACTIONS:
        return _refuse(site, number, "Choose suspend, reactivate or cancel.")
    return _revise(site, number, f"Permit {number} {STATUS_ACTIONS[status]}.", action=STATUS_ACTIONS[status],
                   status=status)


@bp.post("/permits/<site_code>/<number>/renew")
@roles_required("manage_permits")
def permit_renew(site_code: str, number: str):
    site = chosen_site(site_code)
    form = RenewForm()
    if not form.validate():
        return _refuse(site, number, "; ".join(form.valid_to.errors) or "Enter the new last day.")
    return _revise(site, number, f"Permit {number} renewed until {form.valid_to.data.isoformat()} (inclusive).",
                   action="renewed", valid_to=day_end(form.valid_to.data, site.timezone))


@bp.post("/permits/import")
@roles_required("manage_permits")
def permit_import():
    site = chosen_site()
    upload = CsvUploadForm()
    if not upload.validate():
        rollback_only()
        return _list_page(site, upload=upload, status=422)
    names = [code for code, _ in rate_choices(site) if code]
    try:
        report = imports.import_permits(db(), db().get(Site, site.id), upload.file.data.read(), user_id=me().id,
                                        rate_names=names)
    except imports.CsvFormatError as exc:
        rollback_only()
        upload.file.errors = [exc.message]
        return _list_page(site, upload=upload, status=422)
    if not report.ok:
        rollback_only()  # all or nothing: the report lists every bad row
        return _list_page(site, upload=upload, report=report, status=422)
    flash(f"Imported {report.imported} permits into {site.code}.", "success")
    return redirect(url_for("console.permits", site=site.code), 303)


# --- the owner's vehicle lock -----------------------------------------------------------

def _back_to(site: Site):
    target = request.form.get("permit")
    if target:
        return redirect(url_for("console.permit", site_code=site.code, number=target), 303)
    return redirect(url_for("console.permits", site=site.code) + "#locks", 303)


@bp.post("/locks")
@roles_required("lock_vehicle")
def lock_set():
    site = chosen_site()
    form = LockForm()
    if not form.validate():
        rollback_only()
        return _list_page(site, lock_form=form, status=422)
    try:
        plate = plates.validate(form.plate.data)
        vehicles.lock_vehicle(db(), site_id=site.id, plate=plate, user_id=me().id, note=form.note.data)
    except plates.PlateError as exc:
        rollback_only()
        form.plate.errors = [str(exc)]
        return _list_page(site, lock_form=form, status=422)
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
        return _back_to(site)
    flash(f"{plate} is locked: it cannot leave {site.code} until the lock is released.", "success")
    return _back_to(site)


@bp.post("/locks/release")
@roles_required("lock_vehicle")
def lock_release():
    site = chosen_site()
    form = NoteForm()
    plate = plates.normalize(request.form.get("plate", ""))
    if not form.validate():
        rollback_only()
        flash("; ".join(form.note.errors), "error")
        return _back_to(site)
    try:
        vehicles.release_lock(db(), site_id=site.id, plate=plate, user_id=me().id, note=form.note.data or "")
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
    else:
        flash(f"Lock on {plate} released.", "success")
    return _back_to(site)
