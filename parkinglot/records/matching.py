"""Safe retrieval: pair an exit read with the open entry of the same vehicle.

Only an exact plate match, or a valid ticket whose stay has the same plate,
pairs. Look-alike matches are suggestions for an attendant. A missing entry, a
ticket/plate mismatch, a locked vehicle or a hotlisted plate is a refusal that
names the theft-alert kind to raise; a read that only looks like a locked or
hotlisted plate goes to an attendant with the same alert, and never pairs.
This module only reads; callers act.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import plates
from ..barrier.decide import StopHit
from . import lookup, stays, vehicles
from .models import Decision, ParkingSession, PlateRead

Outcome = Literal["paired", "needs_attendant", "refused"]


@dataclass(frozen=True)
class Candidate:
    session_id: int
    plate: str
    distance: float


@dataclass(frozen=True)
class ExitMatch:
    outcome: Outcome
    reason: str
    session: Optional[ParkingSession] = None
    candidates: tuple[Candidate, ...] = ()
    alert_kind: Optional[str] = None
    stop: Optional[StopHit] = None  # the hotlist entry or lock the read hit, if any

    @property
    def paired(self) -> bool:
        return self.outcome == "paired"


def _refuse(reason: str, alert_kind: str, stay: Optional[ParkingSession] = None) -> ExitMatch:
    return ExitMatch("refused", reason, stay, (), alert_kind)


def match_exit(
    session: Session,
    site_id: int,
    plate: str,
    *,
    ticket: Optional[str] = None,
    alternatives: Sequence[str] = (),
) -> ExitMatch:
    """Decide which open stay (if any) this exit read may close."""
    stop = vehicles.strongest_stop(session, site_id, plate)
    if stop is not None:
        stay = lookup.open_stay_for(session, site_id, plate)
        if stop.exact:
            return ExitMatch("refused", stop.reason, stay, (), stop.alert_kind, stop)
        return ExitMatch("needs_attendant", stop.reason, stay, (), stop.alert_kind, stop)

    if ticket:
        by_ticket = stays.by_ticket(session, site_id, ticket)
        if by_ticket is not None and by_ticket.status == "open":
            if by_ticket.plate == plate:
                return ExitMatch("paired", "ticket_and_plate", by_ticket)
            if plate and plates.distance(plate, by_ticket.plate) <= 1.0:
                cand = Candidate(by_ticket.id, by_ticket.plate, plates.distance(plate, by_ticket.plate))
                return ExitMatch("needs_attendant", "ticket_plate_lookalike", by_ticket, (cand,))
            return _refuse("ticket_plate_mismatch", "ticket_mismatch", by_ticket)

    if not plate:
        return ExitMatch("needs_attendant", "no_plate_read")

    exact = lookup.open_stay_for(session, site_id, plate)
    if exact is not None:
        if ticket and exact.ticket and exact.ticket != ticket:
            return _refuse("ticket_plate_mismatch", "ticket_mismatch", exact)
        return ExitMatch("paired", "exact_plate", exact)

    candidates: dict[int, Candidate] = {}
    alt_plates = [a for a in dict.fromkeys(alternatives) if a and a != plate]
    for stay in lookup.open_stays_for(session, site_id, alt_plates):
        candidates[stay.id] = Candidate(stay.id, stay.plate, plates.distance(plate, stay.plate))
    for stay, dist in lookup.fuzzy_sessions(session, site_id, plate, open_only=True, exclude_exact=True):
        candidates.setdefault(stay.id, Candidate(stay.id, stay.plate, dist))
    if candidates:
        ranked = tuple(sorted(candidates.values(), key=lambda c: (c.distance, c.plate)))
        return ExitMatch("needs_attendant", "fuzzy_match_only", None, ranked)

    expired = session.scalar(
        select(ParkingSession)
        .where(ParkingSession.site_id == site_id, ParkingSession.plate == plate,
               ParkingSession.status == "expired")
        .order_by(ParkingSession.entered_at.desc())
        .limit(1)
    )
    if expired is not None:
        return ExitMatch("needs_attendant", "stay_expired", expired,
                         (Candidate(expired.id, expired.plate, 0.0),))
    return _refuse("no_entry", "no_entry")


CONFIRM_WINDOW = timedelta(hours=1)  # no car waits longer at a barrier for an attendant


def held_read_for(session: Session, stay: ParkingSession, lane_id: int, at: datetime) -> Optional[PlateRead]:
    """The read an attendant confirms as ``stay``'s exit at ``at``: the latest read on the lane,
    held for an attendant within ``CONFIRM_WINDOW``, whose decision names the stay (its session,
    or its plate among the look-alike candidates) and that closed no other stay.

    Recorded as the stay's exit read, it ties the look-alike read to the stay: a data-subject
    export includes it, and retention keeps or forgets it together with the stay.
    """
    since = max(stay.entered_at, at - CONFIRM_WINDOW)
    taken = select(ParkingSession.id).where(ParkingSession.exit_read_id == PlateRead.id,
                                            ParkingSession.id != stay.id).exists()
    rows = session.execute(
        select(PlateRead, Decision).join(Decision, Decision.read_id == PlateRead.id)
        .where(PlateRead.lane_id == lane_id, PlateRead.plate != "", PlateRead.received_at >= since,
               PlateRead.received_at <= at, Decision.outcome == "attendant", ~taken)
        .order_by(PlateRead.received_at.desc(), PlateRead.id.desc()).limit(50)).all()
    for read, decision in rows:
        if decision.session_id == stay.id or stay.plate in ((decision.response or {}).get("candidates") or ()):
            return read
    return None
