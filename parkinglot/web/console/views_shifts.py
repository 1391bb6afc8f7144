"""Shifts (start, end with a handover note), the supervisors' shift log, and the service KPIs."""
from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, request, url_for

from ...records import kpis, shifts
from ...records.errors import InvalidInput, ParkingError
from ...records.models import Site
from ...records.types import utcnow
from ...records.wallclock import day_end, day_start, zone
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import PeriodForm, ShiftEndForm, ShiftStartForm, options
from .scope import chosen_site, me, my_sites, sites_by_id
from .views_stays import page_number

DEFAULT_PERIOD_DAYS = 7
MAX_PERIOD_DAYS = 366


def _shift_page(start_form=None, end_form=None, status=200):
    session = read_db()
    current = shifts.open_shift(session, me().id)
    sites = my_sites()
    start_form = start_form or ShiftStartForm(formdata=None)
    start_form.site.choices = options((s.code, f"{s.code} · {s.name}") for s in sites)
    handover_site = sites_by_id().get(current.site_id) if current else (sites[0] if sites else None)
    handover = shifts.last_handover(session, handover_site.id) if handover_site else None
    recent, _ = shifts.shift_log(session, [s.id for s in sites], utcnow() - timedelta(days=30), utcnow(), limit=10)
    return render_template("console/shift.html", current=current, start_form=start_form,
                           end_form=end_form or ShiftEndForm(formdata=None), handover=handover,
                           site=handover_site, sites=sites_by_id(),
                           recent=[r for r in recent if r.user.id == me().id]), status


@bp.get("/shift")
@roles_required("shifts")
def shift():
    return _shift_page()


@bp.post("/shift/start")
@roles_required("shifts")
def shift_start():
    form = ShiftStartForm()
    form.site.choices = options((s.code, s.code) for s in my_sites())
    if not form.validate():
        rollback_only()
        return _shift_page(start_form=form, status=422)
    session = db()
    site = session.get(Site, chosen_site(form.site.data).id)
    try:
        shifts.start_shift(session, me(), site, form.note.data or "")
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
        return redirect(url_for("console.shift"), 303)
    flash(f"Shift started at {site.name}. Your manual actions are now tied to this shift.", "success")
    return redirect(url_for("console.home"), 303)


@bp.post("/shift/end")
@roles_required("shifts")
def shift_end():
    form = ShiftEndForm()
    if not form.validate():
        rollback_only()
        return _shift_page(end_form=form, status=422)
    try:
        shifts.end_shift(db(), me(), form.handover_note.data)
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
        return redirect(url_for("console.shift"), 303)
    flash("Shift ended; your handover note is waiting for the next attendant.", "success")
    return redirect(url_for("console.shift"), 303)


def period(form: PeriodForm, site: Site) -> tuple:
    """The chosen local-date period as UTC ``[start, end)``; default: the last seven days."""
    today = utcnow().astimezone(zone(site.timezone)).date()
    first = form.start.data or (today - timedelta(days=DEFAULT_PERIOD_DAYS - 1))
    last = form.end.data or max(today, first)
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput(f"choose a period of at most {MAX_PERIOD_DAYS} days")
    if last < first:
        raise InvalidInput("the end of the period must not be before its start")
    form.start.data, form.end.data = first, last  # show the period actually used
    return first, last, day_start(first, site.timezone), day_end(last, site.timezone)


@bp.get("/shifts")
@roles_required("view_kpis")
def shift_log():
    site = chosen_site()
    form = PeriodForm()
    rows, has_next, error, first, last = [], False, None, None, None
    page = page_number()
    if form.validate():
        try:
            first, last, start, end = period(form, site)
            rows, has_next = shifts.shift_log(read_db(), [site.id], start, end, limit=25, offset=(page - 1) * 25)
        except InvalidInput as exc:
            error = exc.message
    return render_template("console/shift_log.html", site=site, sites=my_sites(), form=form, rows=rows,
                           has_next=has_next, page=page, error=error, first=first, last=last,
                           args={k: v for k, v in request.args.items() if k != "page"}), \
        422 if (error or form.errors) else 200


@bp.get("/kpis", endpoint="kpis")
@roles_required("view_kpis")
def kpis_page():
    site = chosen_site()
    form = PeriodForm()
    report, error, first, last = None, None, None, None
    if form.validate():
        try:
            first, last, start, end = period(form, site)
            report = kpis.site_kpis(read_db(), site, start, end)
        except InvalidInput as exc:
            error = exc.message
    return render_template("console/kpis.html", site=site, sites=my_sites(), form=form, report=report, error=error,
                           first=first, last=last), 422 if (error or form.errors) else 200
