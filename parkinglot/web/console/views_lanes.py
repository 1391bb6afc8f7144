"""Lanes: open a barrier by hand (with a reason) and switch a site's emergency mode (with a confirmation step)."""
from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, url_for
from sqlalchemy import select

from ...barrier import lanes as lane_service
from ...records import activity, shifts, sites as site_service
from ...records.errors import ParkingError
from ...records.models import Decision, Site, User
from ...records.types import utcnow
from ..api_lanes import dispatcher
from ..auth import roles_required
from ..transaction import db, read_db, rollback_only
from . import bp
from .forms import EmergencyForm, ReasonForm
from .scope import check_site, chosen_site, me, my_sites

RECENT_MANUAL = timedelta(hours=24)


def _page(site, forms=None, emergency_form=None, status=200):
    session = read_db()
    lanes = activity.lane_snapshots(session, [site.id])
    forms = forms or {}
    for snap in lanes:
        forms.setdefault(snap.lane.code, ReasonForm(prefix=snap.lane.code, formdata=None))
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
    form = ReasonForm(prefix=lane.code)
    if not form.validate_on_submit():
        rollback_only()
        return _page(site, forms={lane.code: form}, status=422)
    try:
        result = lane_service.manual_open(session, lane, me(), form.reason.data)
        session.commit()
    except ParkingError as exc:
        rollback_only()
        flash(f"Barrier not opened: {exc.message}", "error")
        return redirect(url_for("console.lanes", site=site.code), 303)
    if result.barrier_command_id is not None:
        dispatcher().submit(result.barrier_command_id)  # after the commit: the record exists before the pulse
    flash(f"{lane.name}: barrier opened. Reason recorded: “{form.reason.data}”.", "success")
    return redirect(url_for("console.lanes", site=site.code), 303)


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
