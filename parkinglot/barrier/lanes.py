"""Lane state and the commands people give: manual open (with a reason) and emergency mode."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import plates
from ..billing import balances, fees
from ..records import audit, lookup, matching, stays, vehicles
from ..records.errors import Conflict, Forbidden, InvalidInput, NotFound
from ..records.models import (BarrierCommand, Decision, Lane, LanePassage, ParkingSession, PlateRead, Shift, Site,
                              UnpaidBalance, User)
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
    stay: Optional[ParkingSession] = None  # the stay admitted or let out, if a car was named
    unpaid: Optional[UnpaidBalance] = None  # what it left owing, if anything


def manual_open(session: Session, lane: Lane, user: User, reason: str, *, session_id: Optional[int] = None,
                plate: str = "", no_vehicle: bool = False) -> ManualOpen:
    """Open a barrier by hand. Always recorded: who, why, on which shift, and the command sent.

    ``plate``: the vehicle it is for, if known; the audit trail keeps it (and any mention of it
    in the reason) only as a digest. ``no_vehicle``: the attendant said no car passes.
    ``open_by_hand`` is the attendant's entry point: it accounts for the car first."""
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
                  **({"plate": plate} if plate else {}), **({"no_vehicle": True} if no_vehicle else {})},
                 actor=audit.Actor.user(user.id), site_id=site.id)
    return ManualOpen(row, command_id)


def _plate(text: str) -> str:
    try:
        return plates.validate(text)
    except plates.PlateError as exc:
        raise InvalidInput(f"plate: {exc}") from None


def open_by_hand(session: Session, lane: Lane, user: User, reason: str, *, plate: str = "",
                 no_vehicle: bool = False, read_id: Optional[int] = None,
                 override_stop: bool = False) -> ManualOpen:
    """An attendant opens a barrier: every car that passes is accounted for.

    At an entry the car's ``plate`` is required and a stay is opened for it (``admit``), so it
    can leave normally. At an exit a named ``plate`` closes that car's stay, its fee billed and
    anything still due recorded as unpaid with the reason. ``no_vehicle`` is the one way to
    open without naming a car (a barrier test, maintenance): said explicitly and audited.
    A named car on a stop list is not let out, as with ``confirm_match``.
    """
    reason = _reason(reason)
    plate = (plate or "").strip()
    if no_vehicle and plate:
        raise InvalidInput("give either the plate of the car or 'no vehicle', not both")
    if no_vehicle or (not plate and lane.direction == "exit"):
        return manual_open(session, lane, user, reason, no_vehicle=no_vehicle)
    if not plate:
        raise InvalidInput("the plate of the car is required to open an entry by hand "
                           "(or say that no vehicle passes)")
    plate = _plate(plate)
    if lane.direction == "entry":
        stay = admit(session, lane, user, plate, reason, read_id=read_id)
        opened = manual_open(session, lane, user, f"admitted stay {stay.id}: {reason}", session_id=stay.id,
                             plate=plate)
        return ManualOpen(opened.decision, opened.barrier_command_id, stay)
    stay = lookup.open_stay_for(session, lane.site_id, plate)
    if stay is None:
        raise InvalidInput(f"{plate} has no open stay at this site: check the plate, or open without naming a car")
    read = session.get(PlateRead, read_id) if read_id else None
    if read_id and (read is None or read.lane_id != lane.id):
        raise InvalidInput(f"read {read_id} was not taken at {lane.code}")
    _release_stopped(session, lane, user, stay, reason, override_stop)
    closed = balances.close_owing(session, stay, lane=lane, user=user, cause="manual_exit", reason=reason,
                                  closed_reason="manual_exit", exit_read_id=read_id)
    opened = manual_open(session, lane, user, f"let out stay {stay.id}: {reason}", session_id=stay.id, plate=plate)
    return ManualOpen(opened.decision, opened.barrier_command_id, stay, closed.unpaid)


def admit(session: Session, lane: Lane, user: User, plate: str, reason: str, *,
          read_id: Optional[int] = None) -> ParkingSession:
    """Open a stay for a car an attendant lets in (a held entry, a jammed ticket machine).

    The stay is as a camera entry's: the tariff in force, a ticket if the site issues them,
    and the lane's read when there is one (its photo is the entry evidence). A car already
    inside, or one a stop list names, is refused.
    """
    if lane.direction != "entry":
        raise InvalidInput(f"{lane.code} is an exit lane: a car is admitted at an entry")
    reason = _reason(reason)
    plate = _plate(plate)
    site = session.get(Site, lane.site_id)
    hits = vehicles.stop_hits(session, site.id, plate)
    if hits:
        raise StoppedVehicle("not admitted: " + "; ".join(vehicles.describe(h, plate) for h in hits))
    read = session.get(PlateRead, read_id) if read_id else None
    if read_id and (read is None or read.lane_id != lane.id):
        raise InvalidInput(f"read {read_id} was not taken at {lane.code}")
    if read is not None and session.scalar(select(ParkingSession.id).where(
            ParkingSession.entry_read_id == read.id)) is not None:
        raise Conflict(f"the car of read {read.id} was admitted already")
    now = utcnow()
    tariff = fees.current_tariff(session, site, now)
    stay = stays.open_stay(session, site_id=site.id, plate=plate, entered_at=now, entry_lane_id=lane.id,
                           entry_read_id=read.id if read is not None else None, zone_id=lane.zone_id,
                           ticket=stays.new_ticket() if site.issues_tickets else None,
                           tariff_version_id=tariff.id if tariff else None, actor=audit.Actor.user(user.id))
    audit.append(session, "stay.admitted", "stay", stay.id,
                 {"plate": plate, "lane": lane.code, "reason": reason, "user": user.username,
                  "read_id": read.id if read is not None else None},
                 actor=audit.Actor.user(user.id), site_id=site.id)
    return stay


class StoppedVehicle(Conflict):
    """The vehicle is hotlisted or locked (or looks like one that is): it is not released by a
    confirmation; only a supervisor's override, with a reason, does that."""

    code = "stopped_vehicle"


def _release_stopped(session: Session, lane: Lane, user: User, stay: ParkingSession, reason: str,
                     override_stop: bool) -> None:
    """An attendant releasing a stay whose plate is on a stop list (exactly or as a look-alike):
    refused, unless a supervisor overrides with a reason, which is audited and alerted."""
    from ..records import alerts
    from ..records.users import can

    stop_hits = vehicles.stop_hits(session, stay.site_id, stay.plate)
    if not stop_hits:
        return
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


def confirm_match(session: Session, lane: Lane, user: User, stay_id: int, reason: str, *,
                  override_stop: bool = False) -> ManualOpen:
    """An attendant confirms a fuzzy match: the stay is closed and the barrier opened, under their name.

    A stay whose plate is on a stop list, exactly or as a look-alike, is refused (the stay
    stays open). A supervisor may override with ``override_stop``: audited, and an alert is
    raised so the release is seen by everyone on shift.
    """
    reason = _reason(reason)
    stay = session.get(ParkingSession, stay_id)
    if stay is None or stay.site_id != lane.site_id:
        raise InvalidInput("that stay does not belong to this lane's site")
    if stay.status != "open":
        raise Conflict(f"stay {stay_id} is {stay.status}")
    _release_stopped(session, lane, user, stay, reason, override_stop)
    at = utcnow()
    held = matching.held_read_for(session, stay, lane.id, at)  # the read at the barrier, under a look-alike
    closed = balances.close_owing(session, stay, lane=lane, user=user, cause="confirm_match", reason=reason,
                                  closed_reason="attendant_confirmed", at=at, exit_read_id=held.id if held else None)
    audit.append(session, "stay.match_confirmed", "stay", stay.id, {"reason": reason, "user": user.username,
                 "lane": lane.code, "plate": stay.plate}, actor=audit.Actor.user(user.id), site_id=lane.site_id)
    # the stay id, not its plate: this reason goes into the (immutable) audit trail
    opened = manual_open(session, lane, user, f"confirmed match for stay {stay.id}: {reason}", session_id=stay.id,
                         plate=stay.plate)
    return ManualOpen(opened.decision, opened.barrier_command_id, stay, closed.unpaid)


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
