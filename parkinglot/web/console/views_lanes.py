"""Lanes: open a barrier by hand (with a reason and the car's plate: an entry admits the car, an exit
lets its stay out) and switch a site's emergency mode (with a confirmation step)."""
from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, url_for
from sqlalchemy import select

from ...barrier import lanes as lane_service
from ...records import activity, shifts, sites as site_service
from ...barrier.events import money
from ...records.errors import InvalidInput, ParkingError
from ...records.models import Decision, ParkingSession, Site, User
from ...records.types import utcnow
from ..api_lanes import dispatcher
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import EmergencyForm, LaneOpenForm
from .scope import check_site, chosen_site, me, my_sites

RECENT_MANUAL = timedelta(hours=24)


def _page(site, forms=None, emergency_form=None, status=200):
    session = read_db()
    lanes = activity.lane_snapshots(session, [site.id])
    forms = forms or {}
    for snap in lanes:
        held = snap.held
        forms.setdefault(snap.lane.code, LaneOpenForm(prefix=snap.lane.code, formdata=None,
                                                      plate=_held_plate(session, snap) if held else "",
                                                      read_id=str(held.id) if held else ""))
    recent = session.execute(
        select(Decision, User).outerjoin(User, User.id == Decision.user_id)
        .where(Decision.site_id == site.id, Decision.created_at >= utcnow() - RECENT_MANUAL,
               Decision.actor == "user")
        .order_by(Decision.created_at.desc()).limit(20)).all()
    return render_template(
        "console/lanes.html", site=site, sites=my_sites(), lanes=lanes, forms=forms, recent=recent,
        lane_names={snap.lane.id: snap.lane for snap in lanes},
        emergency_form=emergency_form or EmergencyForm(formdata=None, active="off" if site.emergency_mode else "on"),
        on_shift=shifts.open_shift(session, me().id) is not None,
    ), status


def _held_plate(session, snap: activity.LaneSnapshot) -> str:
    """The plate to offer for a waiting car: at an exit, the stay the lane named (a refusal for
    payment) or the first look-alike inside, since a misread plate has no stay to close."""
    decision, read = snap.read_decision, snap.held
    if snap.lane.direction == "exit":
        if decision.session_id is not None:
            stay = session.get(ParkingSession, decision.session_id)
            if stay is not None and stay.status == "open":
                return stay.plate
        candidates = (decision.response or {}).get("candidates") or ()
        if candidates:
            return str(candidates[0])
    return read.plate


@bp.get("/lanes")
@roles_required("operate_lanes")
def lanes():
    return _page(chosen_site())


@bp.post("/lanes/<lane_code>/open")
@roles_required("operate_lanes")
def lane_open(lane_code: str):
    session = db()
    lane = site_service.get_lane(session, lane_code)
    check_site(lane.site_id)
    site = chosen_site(lane.site.code)
    form = LaneOpenForm(prefix=lane.code)
    if not form.validate_on_submit():
        rollback_only()
        return _page(site, forms={lane.code: form}, status=422)
    read_id = (form.read_id.data or "").strip()
    try:
        if read_id and not read_id.isdigit():
            raise InvalidInput("the held read is not a number: reload the page")
        result = lane_service.open_by_hand(session, lane, me(), form.reason.data, plate=form.plate.data or "",
                                           no_vehicle=bool(form.no_vehicle.data),
                                           override_stop=bool(form.override_stop.data),
                                           read_id=int(read_id) if read_id else None)
        session.commit()
    except ParkingError as exc:
        rollback_only()
        form.form_errors.append(exc.message)
        flash(f"Barrier not opened: {exc.message}", "error")
        return _page(site, forms={lane.code: form}, status=exc.status if exc.status in (403, 404, 409) else 422)
    if result.barrier_command_id is not None:
        dispatcher().submit(result.barrier_command_id)  # after the commit: the record exists before the pulse
    flash(f"{lane.name}: barrier opened. {_what_happened(result, site)} Reason recorded: “{form.reason.data}”.",
          "success")
    return redirect(url_for("console.lanes", site=site.code), 303)


def _what_happened(result: lane_service.ManualOpen, site: Site) -> str:
    """One sentence for the attendant: which stay was admitted or let out, and what it owes."""
    stay = result.stay
    if stay is None:
        return "No car was named."
    if stay.status == "open":
        ticket = f" Ticket {stay.ticket}." if stay.ticket else ""
        return f"{stay.plate} admitted: stay #{stay.id} opened.{ticket}"
    if result.unpaid is not None:
        return (f"{stay.plate} let out: stay #{stay.id} closed, {money(result.unpaid.amount_minor, site.currency)} "
                f"{site.currency} recorded as unpaid.")
    return f"{stay.plate} let out: stay #{stay.id} closed, nothing owed."


@bp.post("/sites/<site_code>/emergency")
@roles_required("emergency")
def site_emergency(site_code: str):
    """Two steps: the first POST shows what will happen; only the confirmed second POST switches."""
    site = chosen_site(site_code)
    form = EmergencyForm()
    if not form.validate_on_submit() or form.active.data not in ("on", "off"):
        rollback_only()
        return _page(site, emergency_form=form, status=422)
    turn_on = form.active.data == "on"
    if form.confirmed.data != "yes":
        rollback_only()
        return render_template("console/emergency_confirm.html", site=site, form=form, turn_on=turn_on)
    session = db()
    target = session.get(Site, site.id)
    try:
        lane_service.set_emergency(session, target, turn_on, me(), form.reason.data)
    except ParkingError as exc:
        rollback_only()
        flash(exc.message, "error")
        return redirect(url_for("console.lanes", site=site.code), 303)
    flash(f"Emergency mode is now {'ON: every barrier opens' if turn_on else 'OFF: normal rules apply'} at {site.name}.",
          "warning" if turn_on else "success")
    return redirect(url_for("console.lanes", site=site.code), 303)
