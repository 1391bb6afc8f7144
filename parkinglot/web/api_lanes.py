"""Lane controller endpoints: events (frames or plate strings), recognition only, lane state.

The events endpoint replies only after the read, its evidence and the decision
are committed. Slow follow-up work (the barrier pulse) runs after the reply.
Every failure fails closed: the error body carries ``decision`` = deny or
attendant with a reason, so a controller that reads it never opens.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from flask import current_app, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from .. import plates
from ..barrier import events, lanes
from ..barrier.dispatch import Dispatcher
from ..lpr import images
from ..lpr.formats import REGIONS
from ..lpr.pipeline import Pipeline, PlateResult
from ..records import audit, sites
from ..records.errors import InvalidInput, ParkingError
from ..records.models import Lane, Site
from ..records.types import utcnow
from .api import bp
from .auth import (lane_for_device, require_api_permission, require_device, require_device_on_lane,
                   require_site_access)
from .errors import error_body
from .transaction import context, db, read_db, rollback_only

log = logging.getLogger("parkinglot.lane")

EVENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
TICKET = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


class UnsupportedMediaType(ParkingError):
    code = "unsupported_media_type"
    status = 415


class MalformedJSON(ParkingError):
    code = "malformed_json"
    status = 400


class BadFrame(ParkingError):
    status = 422

    def __init__(self, err: images.ImageError, index: int) -> None:
        super().__init__(f"frame {index}: {err}", frame=index)
        self.code = err.code


def pipeline() -> Pipeline:
    app = current_app
    pipe = app.extensions.get("parkinglot_pipeline")
    if pipe is None:
        from ..lpr.pipeline import default_pipeline

        pipe = app.extensions["parkinglot_pipeline"] = default_pipeline()
    return pipe


def dispatcher() -> Dispatcher:
    return current_app.extensions["parkinglot_dispatcher"]


@dataclass(frozen=True)
class EventRequest:
    event_id: Optional[str]
    captured_at: datetime
    ticket: Optional[str]
    frames: tuple[tuple[bytes, str], ...]
    plate: Optional[str]
    confidence: float
    alternatives: tuple[tuple[str, float], ...]


def _parse_time(value: Any, now: datetime, name: str = "captured_at") -> datetime:
    """The controller's clock, as a recorded fact: ISO 8601 with an offset, within the
    accepted skew. It never becomes the "now" of a decision (the server's clock decides)."""
    if value in (None, ""):
        return now
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput(f"{name} must be an ISO 8601 string with a UTC offset")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise InvalidInput(f"{name} needs a UTC offset (e.g. 2026-03-01T08:00:00Z)")
        at = at.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: e.g. 0001-01-01T00:00:00+14:00
        raise InvalidInput(f"{name} is not a valid ISO 8601 time") from None
    cfg = current_app.config
    if at > now + timedelta(seconds=int(cfg["CAPTURE_SKEW_FUTURE_S"])):
        raise InvalidInput(f"captured_at is {int((at - now).total_seconds())} s in the future; check the controller's clock")
    if at < now - timedelta(seconds=int(cfg["CAPTURE_SKEW_PAST_S"])):
        raise InvalidInput("captured_at is too far in the past")
    return at


def _opt(value: Any, pattern: re.Pattern[str], name: str) -> Optional[str]:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{name} must be 1-64 characters from A-Z a-z 0-9 . _ : -")
    return value


MAX_ALTERNATIVES = 10


def _confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):  # JSON true is not 1.0
        raise InvalidInput("confidence must be a number between 0 and 1")
    try:
        conf = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("confidence must be a number between 0 and 1") from None
    if not 0.0 <= conf <= 1.0:
        raise InvalidInput("confidence must be a number between 0 and 1")
    return conf


def parse_event_request(now: datetime, *, allow_plate: bool = True) -> EventRequest:
    ctype = request.mimetype
    max_frames = int(current_app.config["LPR_MAX_FRAMES"])
    if ctype == "multipart/form-data":
        form = request.form
        files: list[FileStorage] = request.files.getlist("frame") + request.files.getlist("frames")
        if not files:
            raise InvalidInput("send one or more image parts named 'frame'")
        if len(files) > max_frames:
            raise InvalidInput(f"at most {max_frames} frames per event, got {len(files)}", limit=max_frames)
        frames = []
        for i, f in enumerate(files):
            if f.mimetype not in ("image/jpeg", "image/png", "application/octet-stream", ""):
                raise UnsupportedMediaType(f"frame {i} is {f.mimetype}; send image/jpeg or image/png")
            f.stream.seek(0)  # a retry of the event (lost database connection) reads it again
            data = f.read()
            kind = images.sniff(data)
            if kind is None:
                raise BadFrame(images.NotAnImage("the frame is not a JPEG or PNG image") if data
                               else images.EmptyImage("the frame is empty"), i)
            frames.append((data, kind))
        return EventRequest(_opt(form.get("event_id"), EVENT_ID, "event_id"), _parse_time(form.get("captured_at"), now),
                            _opt(form.get("ticket"), TICKET, "ticket"), tuple(frames), None, 0.0, ())
    if ctype == "application/json" and allow_plate:
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            raise MalformedJSON("the JSON body is nested too deeply") from None
        if body is None:
            raise MalformedJSON("the body is not valid JSON")
        if not isinstance(body, dict):
            raise MalformedJSON("the JSON body must be an object")
        plate_text = body.get("plate")
        if not isinstance(plate_text, str):
            raise InvalidInput("'plate' (string) is required for plate events; send frames as multipart otherwise")
        try:
            plate = plates.validate(plate_text) if plate_text.strip() else ""
        except plates.PlateError as exc:
            raise InvalidInput(str(exc)) from None
        alts = []
        raw_alts = body.get("alternatives") or []
        if not isinstance(raw_alts, list) or len(raw_alts) > MAX_ALTERNATIVES:
            raise InvalidInput(f"alternatives must be a list of at most {MAX_ALTERNATIVES} objects")
        for alt in raw_alts:
            if not isinstance(alt, dict) or not isinstance(alt.get("plate"), str):
                raise InvalidInput("alternatives must be objects with 'plate' and 'confidence'")
            try:
                alts.append((plates.validate(alt["plate"]), _confidence(alt.get("confidence", 0))))
            except plates.PlateError as exc:
                raise InvalidInput(str(exc)) from None
        # checked even for an empty read: a malformed confidence is a broken controller, whatever it read
        confidence = _confidence(body.get("confidence"))
        return EventRequest(_opt(body.get("event_id"), EVENT_ID, "event_id"), _parse_time(body.get("captured_at"), now),
                            _opt(body.get("ticket"), TICKET, "ticket"), (), plate,
                            confidence if plate else 0.0, tuple(alts))
    accepted = "multipart/form-data or application/json" if allow_plate else "multipart/form-data"
    raise UnsupportedMediaType(f"content type {ctype or 'none'} is not accepted; send {accepted}")


def _decode_frames(req: EventRequest) -> list:
    """Decode every frame (header-checked first), naming the bad one in the error."""
    decoded = []
    for i, (data, _kind) in enumerate(req.frames):
        try:
            decoded.append(images.decode(data, max_pixels=int(current_app.config["LPR_MAX_PIXELS"])))
        except images.ImageError as exc:
            raise BadFrame(exc, i) from None
    return decoded


def _reading(req: EventRequest, site: Site) -> tuple[events.Reading, tuple[events.Frame, ...]]:
    if not req.frames:
        return events.Reading(plate=req.plate or "", raw_text=req.plate or "", confidence=req.confidence,
                              alternatives=req.alternatives, source="camera", region=site.plate_region,
                              no_plate_reason=None if req.plate else "camera_read_no_plate"), ()
    decoded = _decode_frames(req)
    result: PlateResult = pipeline().recognize(decoded, tuple(site.plate_regions))
    frames = tuple(events.Frame(data, kind, img.shape[1], img.shape[0]) for (data, kind), img in zip(req.frames, decoded))
    reading = events.Reading(
        plate=result.text, raw_text=result.raw_text, confidence=result.confidence,
        alternatives=result.alternatives, box=[list(p) for p in result.box] if result.box else None,
        timings={k: round(v, 2) for k, v in result.timings.items()}, no_plate_reason=result.reason,
        source="pipeline", region=result.region or site.plate_region, best_frame=result.frame_index,
    )
    return reading, frames


def _fail_closed(exc: ParkingError):
    """The error reply of a lane endpoint: ``error_body`` adds the decision (deny or attendant)."""
    return error_body(exc.code, exc.message, exc.status, {k: str(v)[:200] for k, v in exc.details.items()})


@bp.post("/lanes/<lane_code>/events")
def lane_event(lane_code: str):
    """A car at the barrier: decide open / deny / attendant, with a reason."""
    received = utcnow()
    for attempt in (1, 2):
        try:
            return _lane_event(lane_code, received)
        except DBAPIError as exc:
            if attempt == 1 and exc.connection_invalidated:
                # the pooled connection had died (database restarted): the pool is reset, and
                # a retry on a fresh connection is safe (a committed first try is replayed)
                log.warning("lane=%s database connection lost; retrying once", lane_code)
                db().rollback()
                continue
            rollback_only()
            log.error("lane=%s database unavailable: %s", lane_code, exc.__class__.__name__)
            return _db_down()


def _lane_event(lane_code: str, received: datetime):
    try:
        device, lane = require_device_on_lane(lane_code)
        if not lane.enabled:
            raise ParkingError("this lane is disabled")
        site = read_db().get(Site, lane.site_id)
        req = parse_event_request(received)
        digest = events.request_digest(audit.plate_key(db()), lane.id, plate=req.plate or "",
                                       frames=[data for data, _ in req.frames], ticket=req.ticket)
        window = int(current_app.config["EVENT_REPLAY_WINDOW_S"])
        if req.event_id and req.frames:
            # a retried frame event must not pay for recognition again; a plate-string event
            # skips this query: ``process`` finds its replay by the unique (lane, event_id) index
            prior = events.replay(read_db(), lane.id, req.event_id, digest, received, window)
            if prior is not None:
                return jsonify(prior.reply.to_json())
        reading, frames = _reading(req, site)
        ev = events.LaneEvent(lane_id=lane.id, captured_at=req.captured_at, received_at=received, reading=reading,
                              device_id=device.id, event_id=req.event_id, frames=frames, ticket=req.ticket,
                              request_digest=digest)
        # committed before replying: the lane is never told anything without a durable record
        outcome = events.process_with_retry(db(), context().evidence, ev, replay_window_s=window)
    except RequestEntityTooLarge:
        raise
    except ParkingError as exc:
        rollback_only()
        return _fail_closed(exc)
    if outcome.barrier_command_id is not None:  # committed: the pulse runs on the dispatcher thread
        dispatcher().submit(outcome.barrier_command_id)
    body = outcome.reply.to_json()
    if outcome.status == 409:
        body["error"] = {"code": "event_id_reused", "details": {"event_id": req.event_id},
                         "message": "this event id was already used for another request; the new one is "
                                    "recorded and an attendant is called"}
    return jsonify(body), outcome.status


def _db_down():
    from ..records.errors import Unavailable

    return _fail_closed(Unavailable("the database is unavailable; nothing was recorded"))


MAX_ROW_ID = 2**63 - 1  # the largest id either database can hold: a larger one names no row (and overflows a bind)


@bp.post("/lanes/<lane_code>/passages")
def lane_passage(lane_code: str):
    """The barrier reports that the car of an ``open`` has passed (drivers that can tell).

    Until then a repeat read of the same plate is the same car still waiting and is given
    the same ``open``; after it, a repeat read is another car and is decided afresh.
    """
    received = utcnow()
    try:
        device, lane = require_device_on_lane(lane_code)
        body = _json_body()
        decision_id = body.get("decision_id")
        if isinstance(decision_id, bool) or not isinstance(decision_id, int) or not 0 < decision_id <= MAX_ROW_ID:
            raise InvalidInput("'decision_id' (the id of the open decision) is required")
        reported = _parse_time(body.get("passed_at"), received, "passed_at") if body.get("passed_at") else None
        result = lanes.record_passage(db(), lane, decision_id, device_id=device.id, passed_at=received,
                                      reported_at=reported)
        db().commit()
    except ParkingError as exc:
        rollback_only()
        return _fail_closed(exc)
    p = result.passage
    return jsonify(decision_id=p.decision_id, lane=lane.code, passed_at=p.passed_at.isoformat(),
                   recorded=result.created), 201 if result.created else 200


@bp.post("/recognize")
def recognize_only():
    """Recognition only, for commissioning cameras: nothing is stored or decided."""
    device = require_device()
    site = read_db().get(Site, device.site_id)
    req = parse_event_request(utcnow(), allow_plate=False)
    asked = request.args.get("region")
    if asked is not None and asked not in REGIONS:
        raise InvalidInput(f"unknown region {asked[:16]!r}; known: {', '.join(REGIONS)}")
    regions = (asked,) if asked else tuple(site.plate_regions)
    r = pipeline().recognize(_decode_frames(req), regions)
    region = r.region or regions[0]
    rollback_only()
    return jsonify(plate=r.text, confidence=round(r.confidence, 4), raw_text=r.raw_text,
                   box=[list(p) for p in r.box] if r.box else None,
                   alternatives=[{"plate": t, "confidence": c} for t, c in r.alternatives],
                   reason=r.reason, frame_index=r.frame_index, region=region,
                   candidate_boxes=[[list(p) for p in b] for b in r.candidate_boxes],
                   timings={k: round(v, 2) for k, v in r.timings.items()})


@bp.get("/lanes/<lane_code>")
def lane_get(lane_code: str):
    """Lane state: for the device on that lane's site, or a console user of that site."""
    lane = _lane_for_caller(lane_code, "view_dashboard")
    return jsonify(lanes.lane_state(read_db(), lane))


def _lane_for_caller(lane_code: str, action: str) -> Lane:
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return lane_for_device(lane_code, require_device())
    user = require_api_permission(action)
    lane = sites.get_lane(read_db(), lane_code)
    require_site_access(user, lane.site_id)
    return lane


def _json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise MalformedJSON("the body must be a JSON object")
    return body


def _reason(body: dict[str, Any]) -> str:
    """The reason a person gave, as text: a list or a number is refused, not stored as its repr."""
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidInput("'reason' must be text")
    return reason


@bp.post("/lanes/<lane_code>/open")
def lane_manual_open(lane_code: str):
    """Open by hand (attendant or supervisor); the reason is mandatory and audited. ``plate``
    names the car: at an entry it is required (the car is admitted, a stay opened), at an exit
    its stay is closed and anything owed recorded as unpaid. ``no_vehicle: true`` opens for no car."""
    user = require_api_permission("operate_lanes")
    body = _json_body()
    plate, no_vehicle = body.get("plate", ""), body.get("no_vehicle", False)
    override_stop = body.get("override_stop", False)
    if not isinstance(plate, str) or not isinstance(no_vehicle, bool) or not isinstance(override_stop, bool):
        raise InvalidInput("'plate' must be a string, 'no_vehicle' and 'override_stop' true or false")
    lane = sites.get_lane(db(), lane_code)
    require_site_access(user, lane.site_id)
    result = lanes.open_by_hand(db(), lane, user, _reason(body), plate=plate, no_vehicle=no_vehicle,
                                override_stop=override_stop)
    db().commit()
    if result.barrier_command_id is not None:
        dispatcher().submit(result.barrier_command_id)
    stay, unpaid = result.stay, result.unpaid
    return jsonify(decision="open", reason="manual_open", decision_id=result.decision.id,
                   session_id=stay.id if stay else None, ticket=stay.ticket if stay else None,
                   unpaid=events.money(unpaid.amount_minor, unpaid.currency) if unpaid else None)


@bp.post("/sites/<site_code>/emergency")
def site_emergency(site_code: str):
    """Switch evacuation mode (supervisor): every lane opens while it is on."""
    user = require_api_permission("emergency")
    body = _json_body()
    if not isinstance(body.get("active"), bool):
        raise InvalidInput("'active' (true or false) is required")
    site = sites.get_site(db(), site_code)
    require_site_access(user, site.id)
    lanes.set_emergency(db(), site, body["active"], user, _reason(body))
    return jsonify(site=site.code, emergency_mode=site.emergency_mode,
                   since=site.emergency_since.isoformat() if site.emergency_since else None)
