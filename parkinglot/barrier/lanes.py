"""Lane state and the commands people give: manual open (with a reason) and emergency mode."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..records import audit, matching, stays
from ..records.errors import Conflict, Forbidden, InvalidInput, NotFound
from ..records.models import BarrierCommand, Decision, Lane, LanePassage, PlateRead, Shift, Site, User
from ..records.types import utcnow

MIN_REASON_LEN = 3


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LEN:
        raise InvalidInput("a reason is required (at least 3 characters)")
    return reason[:200]


def open_shift_of(session: Session, user_id: int) -> Optional[Shift]:
    return session.scalar(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None)))


@dataclass(frozen=True)
class ManualOpen:
    decision: Decision
    barrier_command_id: Optional[int]


def manual_open(session: Session, lane: Lane, user: User, reason: str, *, session_id: Optional[int] = None,
                plate: str = "") -> ManualOpen:
    """Open a barrier by hand. Always recorded: who, why, on which shift, and the command sent.

    ``plate``: the vehicle it is for, if known; the audit trail keeps it (and any mention of it
    in the reason) only as a digest."""
    reason = _reason(reason)
    site = session.get(Site, lane.site_id)
    shift = open_shift_of(session, user.id)
    row = Decision(read_id=None, site_id=site.id, lane_id=lane.id, outcome="open", reason="manual_open",
                   message=reason, session_id=session_id, actor="user", user_id=user.id,
                   shift_id=shift.id if shift else None, response={})
    session.add(row)
    session.flush()
    command_id = None
    if site.barrier_mode in ("push", "both"):
        cmd = BarrierCommand(lane_id=lane.id, decision_id=row.id, command="open", status="pending")
        session.add(cmd)
        session.flush()
        command_id = cmd.id
    row.response = {"decision": "open", "reason": "manual_open", "message_for_display": "Barrier opened by attendant",
                    "decision_id": row.id}
    audit.append(session, "lane.manual_open", "lane", lane.code,
                 {"decision_id": row.id, "reason": reason, "user": user.username,
                  "shift_id": shift.id if shift else None, "session_id": session_id,
                  **({"plate": plate} if plate else {})},
                 actor=audit.Actor.user(user.id), site_id=site.id)
    return ManualOpen(row, command_id)


class StoppedVehicle(Conflict):
    """The vehicle is hotlisted or locked (or looks like one that is): it is not released by a
    confirmation; only a supervisor's override, with a reason, does that."""

    code = "stopped_vehicle"


def confirm_match(session: Session, lane: Lane, user: User, stay_id: int, reason: str, *,
                  override_stop: bool = False) -> ManualOpen:
    """An attendant confirms a fuzzy match: the stay is closed and the barrier opened, under their name.

    A stay whose plate is on a stop list, exactly or as a look-alike, is refused (the stay
    stays open). A supervisor may override with ``override_stop``: audited, and an alert is
    raised so the release is seen by everyone on shift.
    """
    from ..records import alerts, vehicles
    from ..records.models import ParkingSession
    from ..records.users import can

    reason = _reason(reason)
    stay = session.get(ParkingSession, stay_id)
    if stay is None or stay.site_id != lane.site_id:
        raise InvalidInput("that stay does not belong to this lane's site")
    if stay.status != "open":
        raise Conflict(f"stay {stay_id} is {stay.status}")
    stop_hits = vehicles.stop_hits(session, stay.site_id, stay.plate)
    if stop_hits:
        what = "; ".join(vehicles.describe(hit, stay.plate) for hit in stop_hits)
        if not override_stop:
            raise StoppedVehicle(f"not released: {what}. Only a supervisor can override, with a reason.",
                                 session_id=stay.id)
        if not can(user, "override_stop"):
            raise Forbidden("only a supervisor can release a hotlisted or locked vehicle")
        audit.append(session, "stay.stop_overridden", "stay", stay.id,
                     {"reason": reason, "user": user.username, "lane": lane.code, "plate": stay.plate,
                      "stops": [{"kind": h.kind, "id": h.id, "exact": h.exact} for h in stop_hits]},
                     actor=audit.Actor.user(user.id), site_id=lane.site_id)
        alerts.raise_alert(session, site_id=lane.site_id, kind="stop_override", plate=stay.plate, lane_id=lane.id,
                           session_id=stay.id, message=f"{user.display_name or user.username} released {what} "
                                                       f"at {lane.name}: {reason}")
    at = utcnow()
    held = matching.held_read_for(session, stay, lane.id, at)  # the read at the barrier, under a look-alike
    stays.close_stay(session, stay, exited_at=at, exit_lane_id=lane.id, exit_read_id=held.id if held else None,
                     reason="attendant_confirmed", actor=audit.Actor.user(user.id))
    audit.append(session, "stay.match_confirmed", "stay", stay.id, {"reason": reason, "user": user.username,
                 "lane": lane.code, "plate": stay.plate}, actor=audit.Actor.user(user.id), site_id=lane.site_id)
    # the stay id, not its plate: this reason goes into the (immutable) audit trail
    return manual_open(session, lane, user, f"confirmed match for stay {stay.id}: {reason}", session_id=stay.id,
                       plate=stay.plate)


@dataclass(frozen=True)
class RecordedPassage:
    passage: LanePassage
    created: bool  # False: this passage had been reported already (a retry)


def record_passage(session: Session, lane: Lane, decision_id: int, *, device_id: Optional[int],
                   passed_at: datetime, reported_at: Optional[datetime]) -> RecordedPassage:
    """The barrier reports that the car of ``open`` decision ``decision_id`` has passed.

    After it, a repeat read of the same plate on the lane is another car and is decided
    afresh (``events._repeat_open``). Reported once per decision; a retry returns the first.
    """
    row = session.get(Decision, decision_id)
    if row is None or row.lane_id != lane.id:
        raise NotFound(f"no decision {decision_id} on lane {lane.code}")
    if row.outcome != "open":
        raise Conflict(f"decision {decision_id} did not open the barrier")
    prior = session.scalar(select(LanePassage).where(LanePassage.decision_id == decision_id))
    if prior is not None:
        return RecordedPassage(prior, False)
    passage = LanePassage(lane_id=lane.id, decision_id=decision_id, device_id=device_id, passed_at=passed_at,
                          reported_at=reported_at)
    session.add(passage)
    session.flush()
    audit.append(session, "lane.passage", "decision", decision_id,
                 {"lane": lane.code, "passed_at": passed_at, "reported_at": reported_at},
                 actor=audit.Actor.device(device_id) if device_id else audit.SYSTEM, site_id=lane.site_id)
    return RecordedPassage(passage, True)


def set_emergency(session: Session, site: Site, active: bool, user: User, reason: str) -> Site:
    """Switch a site's evacuation mode; every change is audited with the person and reason."""
    reason = _reason(reason)
    if site.emergency_mode == active:
        raise Conflict(f"emergency mode is already {'on' if active else 'off'}")
    site.emergency_mode = active
    site.emergency_since = utcnow() if active else None
    audit.append(session, "site.emergency_on" if active else "site.emergency_off", "site", site.code,
                 {"reason": reason, "user": user.username}, actor=audit.Actor.user(user.id), site_id=site.id)
    session.flush()
    return site


def lane_state(session: Session, lane: Lane) -> dict[str, Any]:
    """What a lane looks like right now: last decision and read, last barrier command."""
    site = session.get(Site, lane.site_id)
    last = session.scalar(select(Decision).where(Decision.lane_id == lane.id).order_by(Decision.id.desc()).limit(1))
    read = session.get(PlateRead, last.read_id) if last is not None and last.read_id else None
    cmd = session.scalar(select(BarrierCommand).where(BarrierCommand.lane_id == lane.id)
                         .order_by(BarrierCommand.id.desc()).limit(1))
    return {
        "lane": lane.code,
        "name": lane.name,
        "site": site.code,
        "direction": lane.direction,
        "enabled": lane.enabled,
        "driver": lane.driver,
        "emergency_mode": site.emergency_mode,
        "last_decision": None if last is None else {
            "id": last.id, "decision": last.outcome, "reason": last.reason, "at": last.created_at.isoformat(),
            "actor": last.actor, "session_id": last.session_id,
            "plate": read.plate if read else None, "confidence": read.confidence if read else None,
            "read_id": read.id if read else None,
        },
        "barrier": None if cmd is None else {
            "command": cmd.command, "status": cmd.status, "at": cmd.created_at.isoformat(),
            "error": cmd.error,
        },
    }
