"""Vehicles and stays: search, the stay's page, its photos, and confirming a look-alike match."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ...barrier import lanes as lane_service
from ...records import stay_detail, stay_search
from ...records.errors import InvalidInput, ParkingError
from ...records.models import Evidence, Lane, ParkingSession, PlateRead, ReadFrame
from ...records.wallclock import localize
from ..api_lanes import dispatcher
from ..auth import roles_required
from ..transaction import context, db, read_db, rollback_only
from . import bp
from .forms import ConfirmMatchForm, DisputeOpenForm, StaySearchForm, options
from .scope import check_site, chosen_site, get_scoped, me, my_sites
from .templating import allowed

PAGE_SIZE = 50
MAX_PAGE = 200


def page_number() -> int:
    return max(1, min(request.args.get("page", default=1, type=int) or 1, MAX_PAGE))


@bp.get("/stays")
@roles_required("view_stays")
def stays():
    site = chosen_site()
    session = read_db()
    site_lanes = list(session.scalars(select(Lane).where(Lane.site_id == site.id).order_by(Lane.code)))
    form = StaySearchForm()
    form.lane.choices = options([("", "Any lane")] + [(lane.code, f"{lane.code} · {lane.name}") for lane in site_lanes])
    page, result, error = page_number(), None, None
    if form.validate():
        try:
            lane = next((lane for lane in site_lanes if lane.code == form.lane.data), None)
            if form.lane.data and lane is None:
                raise InvalidInput("choose a lane of this site")
            query = stay_search.StayQuery(
                site_id=site.id, plate=(form.q.data or "").strip(), mode=form.mode.data or "exact",
                start=localize(form.start.data, site.timezone) if form.start.data else None,
                end=localize(form.end.data, site.timezone) if form.end.data else None,
                lane_id=lane.id if lane else None, status=form.status.data or None)
            result = stay_search.search(session, query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        except InvalidInput as exc:
            error = exc.message
    status = 422 if (error or form.errors) else 200
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("console/stays.html", site=site, sites=my_sites(), form=form, result=result,
                           error=error, page=page, args=args, lanes={lane.id: lane for lane in site_lanes}), status


@bp.get("/stays/<int:stay_id>")
@roles_required("view_stays")
def stay(stay_id: int):
    session = read_db()
    s = get_scoped(session, ParkingSession, stay_id, "stay")
    detail = stay_detail.stay_detail(session, s)
    return _stay_page(detail, _confirm_form(detail) if s.status == "open" and allowed("confirm_match") else None)


def _stay_page(detail: stay_detail.StayDetail, confirm_form: ConfirmMatchForm | None, status: int = 200):
    return render_template("console/stay.html", d=detail, confirm_form=confirm_form,
                           dispute_form=DisputeOpenForm(formdata=None) if allowed("open_dispute") else None), status


def _confirm_form(detail: stay_detail.StayDetail) -> ConfirmMatchForm:
    form = ConfirmMatchForm()
    form.lane.choices = options((lane.code, f"{lane.code} · {lane.name}") for lane in detail.lanes.values()
                                if lane.direction == "exit" and lane.enabled)
    return form


@bp.post("/stays/<int:stay_id>/confirm")
@roles_required("confirm_match")
def stay_confirm(stay_id: int):
    """An attendant confirms that the car at an exit lane is this stay's vehicle: close, open, audit."""
    session = db()
    s = get_scoped(session, ParkingSession, stay_id, "stay")
    detail = stay_detail.stay_detail(session, s)
    form = _confirm_form(detail)
    if not form.validate_on_submit():
        rollback_only()
        return _stay_page(detail, form, 422)
    lane = next(lane for lane in detail.lanes.values() if lane.code == form.lane.data)
    try:
        result = lane_service.confirm_match(session, lane, me(), s.id, form.reason.data,
                                            override_stop=bool(form.override_stop.data))
        session.commit()
    except ParkingError as exc:
        rollback_only()
        flash(f"Not confirmed: {exc.message}", "error")
        return redirect(url_for("console.stay", stay_id=stay_id), 303)
    if result.barrier_command_id is not None:
        dispatcher().submit(result.barrier_command_id)
    flash(f"Match confirmed for {s.plate}; barrier {lane.code} opened. Recorded under your name.", "success")
    return redirect(url_for("console.stay", stay_id=stay_id), 303)


@bp.get("/evidence/<sha256>")
def evidence(sha256: str):
    """A stored photo, only if it belongs to a read at one of the user's sites (never a path from input)."""
    if not (allowed("view_stays") or allowed("view_dashboard")):
        abort(403)
    session = read_db()
    row = session.get(Evidence, sha256.lower())
    if row is None or row.purged_at is not None:
        abort(404, "There is no such photo (or it was removed by the retention policy).")
    site_id = session.scalar(select(PlateRead.site_id).join(ReadFrame, ReadFrame.read_id == PlateRead.id)
                             .where(ReadFrame.evidence_sha256 == row.sha256).limit(1))
    check_site(site_id)
    data = context().evidence.read(row.sha256, row.content_type)
    resp = Response(data, mimetype=row.content_type)
    resp.headers["Cache-Control"] = "private, max-age=86400, immutable"  # content-addressed: never changes
    resp.headers["Content-Disposition"] = f'inline; filename="{row.sha256[:16]}{".png" if "png" in row.content_type else ".jpg"}"'
    return resp
