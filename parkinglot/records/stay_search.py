"""One search over stays combining a plate (exact, prefix or look-alike), a time range, a lane and a status.

Built on the same indexes as ``lookup``: a plate narrows by ``(site_id, plate,
entered_at)``, a status by ``(site_id, status, entered_at)``, a time range by
``(site_id, entered_at)``. Pages are fetched with ``limit + 1`` rows to know
whether there is a next page: nothing ever counts the whole history.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from .. import plates
from . import lookup
from .errors import InvalidInput
from .models import SESSION_STATUSES, ParkingSession

MODES = ("exact", "prefix", "fuzzy")
FUZZY_STAYS_MAX = 500


@dataclass(frozen=True)
class StayQuery:
    site_id: int
    plate: str = ""
    mode: str = "exact"
    start: Optional[datetime] = None
    end: Optional[datetime] = None
    lane_id: Optional[int] = None
    status: Optional[str] = None


@dataclass(frozen=True)
class StayHit:
    stay: ParkingSession
    distance: Optional[float] = None  # look-alike distance for fuzzy searches


@dataclass(frozen=True)
class StayPage:
    hits: list[StayHit]
    has_next: bool


def _filters(stmt: Select, q: StayQuery) -> Select:
    if q.start is not None:
        stmt = stmt.where(ParkingSession.entered_at >= q.start)
    if q.end is not None:
        stmt = stmt.where(ParkingSession.entered_at < q.end)
    if q.lane_id is not None:
        stmt = stmt.where(or_(ParkingSession.entry_lane_id == q.lane_id, ParkingSession.exit_lane_id == q.lane_id))
    if q.status:
        stmt = stmt.where(ParkingSession.status == q.status)
    return stmt


def _check(q: StayQuery) -> str:
    if q.mode not in MODES:
        raise InvalidInput(f"search mode must be one of {', '.join(MODES)}")
    if q.status and q.status not in SESSION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(SESSION_STATUSES)}")
    if q.start is not None and q.end is not None and q.end <= q.start:
        raise InvalidInput("the end of the time range must be after its start")
    if not q.plate:
        return ""
    try:
        return plates.validate(q.plate)
    except plates.PlateError as exc:
        raise InvalidInput(str(exc)) from None


def search(session: Session, q: StayQuery, *, limit: int = 50, offset: int = 0) -> StayPage:
    """Newest first (prefix: by plate, then newest); look-alikes nearest first."""
    plate = _check(q)
    base = _filters(select(ParkingSession).where(ParkingSession.site_id == q.site_id), q)
    if plate and q.mode == "fuzzy":
        return _fuzzy(session, base, q.site_id, plate, limit, offset)
    if plate and q.mode == "prefix":
        stmt = base.where(ParkingSession.plate >= plate, ParkingSession.plate < lookup._prefix_upper(plate)) \
                   .order_by(ParkingSession.plate, ParkingSession.entered_at.desc(), ParkingSession.id.desc())
    elif plate:
        stmt = base.where(ParkingSession.plate == plate) \
                   .order_by(ParkingSession.entered_at.desc(), ParkingSession.id.desc())
    else:
        stmt = base.order_by(ParkingSession.entered_at.desc(), ParkingSession.id.desc())
    rows = list(session.scalars(stmt.limit(limit + 1).offset(offset)))
    return StayPage([StayHit(s) for s in rows[:limit]], len(rows) > limit)


def _fuzzy(session: Session, base: Select, site_id: int, plate: str, limit: int, offset: int) -> StayPage:
    hits = lookup.fuzzy_plates(session, site_id, plate, limit=50)
    if not hits:
        return StayPage([], False)
    dist = {h.plate: h.distance for h in hits}
    rows = session.scalars(base.where(ParkingSession.plate.in_(list(dist)))
                           .order_by(ParkingSession.entered_at.desc()).limit(FUZZY_STAYS_MAX)).all()
    ranked = sorted(rows, key=lambda s: (dist[s.plate], -s.entered_at.timestamp(), -s.id))
    page = ranked[offset:offset + limit + 1]
    return StayPage([StayHit(s, dist[s.plate]) for s in page[:limit]], len(page) > limit)
