"""Finding vehicles and stays: exact, prefix, time range, and confusion-aware fuzzy search.

Every query is an index probe or range scan: exact and prefix use
``(site_id, plate, entered_at)``; fuzzy search probes the ``plate_key`` table
(folded plate and its one-deletion variants), so a million stays are never scanned.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

from sqlalchemy import TextClause, bindparam, select, text
from sqlalchemy.orm import Session

from .. import plates
from .errors import InvalidInput
from .models import ParkingSession, PlateKey

FUZZY_MAX_DISTANCE = 1.5
FUZZY_MAX_PLATES = 200


def register_plate(session: Session, site_id: int, plate: str) -> None:
    """Add ``plate``'s fuzzy keys for ``site_id`` (idempotent, once per vehicle)."""
    if not plate:
        return
    keys = sorted(plates.index_keys(plate))
    if not keys:
        return
    params: dict[str, object] = {"site_id": site_id, "plate": plate}
    params.update({f"key{i}": k for i, k in enumerate(keys)})
    session.execute(_add_keys(len(keys)), params)


_ADD_KEYS: dict[int, TextClause] = {}


def _add_keys(n: int) -> TextClause:
    """One multi-row ``INSERT .. ON CONFLICT DO NOTHING`` (the same SQL on SQLite and PostgreSQL).

    Every new stay registers its plate: one statement of n rows cost the database and the
    driver less than n executions of one. Built once per n, as text: SQLAlchemy would
    recompile a multi-row VALUES at every execution.
    """
    stmt = _ADD_KEYS.get(n)
    if stmt is None:
        t = PlateKey.__table__
        rows = ", ".join(f"(:site_id, :key{i}, :plate)" for i in range(n))
        stmt = _ADD_KEYS[n] = text(
            f"INSERT INTO {t.name} (site_id, key, plate) VALUES {rows} ON CONFLICT DO NOTHING"
        ).bindparams(bindparam("site_id", type_=t.c.site_id.type), bindparam("plate", type_=t.c.plate.type),
                     *[bindparam(f"key{i}", type_=t.c.key.type) for i in range(n)])
    return stmt


def _check_plate(text: str) -> str:
    try:
        return plates.validate(text)
    except plates.PlateError as exc:
        raise InvalidInput(str(exc)) from None


def by_plate(session: Session, site_id: int, plate: str, *, limit: int = 50, offset: int = 0
             ) -> list[ParkingSession]:
    plate = _check_plate(plate)
    return list(session.scalars(
        select(ParkingSession)
        .where(ParkingSession.site_id == site_id, ParkingSession.plate == plate)
        .order_by(ParkingSession.entered_at.desc())
        .limit(limit).offset(offset)
    ))


def _prefix_upper(prefix: str) -> str:
    """Smallest string greater than every string starting with ``prefix`` (A-Z0-9 only)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def by_prefix(session: Session, site_id: int, prefix: str, *, limit: int = 50, offset: int = 0
              ) -> list[ParkingSession]:
    prefix = _check_plate(prefix)
    return list(session.scalars(
        select(ParkingSession)
        .where(
            ParkingSession.site_id == site_id,
            ParkingSession.plate >= prefix,
            ParkingSession.plate < _prefix_upper(prefix),
        )
        .order_by(ParkingSession.plate, ParkingSession.entered_at.desc())
        .limit(limit).offset(offset)
    ))


def by_time(
    session: Session,
    site_id: int,
    start: datetime,
    end: datetime,
    *,
    lane_id: Optional[int] = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ParkingSession]:
    """Stays that entered in ``[start, end)``, optionally through one lane (entry or exit)."""
    if end <= start:
        raise InvalidInput("the end of the range must be after its start")
    stmt = select(ParkingSession).where(
        ParkingSession.site_id == site_id,
        ParkingSession.entered_at >= start,
        ParkingSession.entered_at < end,
    )
    if lane_id is not None:
        stmt = stmt.where((ParkingSession.entry_lane_id == lane_id) | (ParkingSession.exit_lane_id == lane_id))
    return list(session.scalars(stmt.order_by(ParkingSession.entered_at.desc()).limit(limit).offset(offset)))


@dataclass(frozen=True)
class FuzzyHit:
    plate: str
    distance: float


def fuzzy_plates(session: Session, site_id: int, plate: str, *, limit: int = 10,
                 max_distance: float = FUZZY_MAX_DISTANCE) -> list[FuzzyHit]:
    """Known plates at the site that look like ``plate``, nearest first."""
    plate = _check_plate(plate)
    keys = sorted(plates.index_keys(plate))
    found = session.scalars(
        select(PlateKey.plate)
        .where(PlateKey.site_id == site_id, PlateKey.key.in_(keys))
        .distinct()
        .limit(FUZZY_MAX_PLATES)
    ).all()
    hits = [FuzzyHit(p, plates.distance(plate, p)) for p in found]
    hits = [h for h in hits if h.distance <= max_distance]
    hits.sort(key=lambda h: (h.distance, h.plate))
    return hits[:limit]


def fuzzy_sessions(
    session: Session,
    site_id: int,
    plate: str,
    *,
    open_only: bool = False,
    limit: int = 20,
    exclude_exact: bool = False,
) -> list[tuple[ParkingSession, float]]:
    """Stays of look-alike plates, ranked by plate distance then most recent entry."""
    hits = fuzzy_plates(session, site_id, plate, limit=limit)
    if exclude_exact:
        hits = [h for h in hits if h.distance > 0]
    if not hits:
        return []
    dist = {h.plate: h.distance for h in hits}
    stmt = select(ParkingSession).where(
        ParkingSession.site_id == site_id, ParkingSession.plate.in_(list(dist))
    )
    if open_only:
        stmt = stmt.where(ParkingSession.status == "open")
    rows = session.scalars(stmt.order_by(ParkingSession.entered_at.desc()).limit(limit * 5)).all()
    ranked = sorted(rows, key=lambda s: (dist[s.plate], -s.entered_at.timestamp()))
    return [(s, dist[s.plate]) for s in ranked[:limit]]


# built once: every lane event asks (binds site_id, plate)
OPEN_STAY_OF_PLATE = (ParkingSession.site_id == bindparam("site_id"), ParkingSession.plate == bindparam("plate"),
                      ParkingSession.status == "open")
_OPEN_STAY = select(ParkingSession).where(*OPEN_STAY_OF_PLATE)


def open_stay_for(session: Session, site_id: int, plate: str) -> Optional[ParkingSession]:
    return session.scalar(_OPEN_STAY, {"site_id": site_id, "plate": plate})


def open_stays_for(session: Session, site_id: int, plates_: Sequence[str]) -> list[ParkingSession]:
    if not plates_:
        return []
    return list(session.scalars(
        select(ParkingSession).where(
            ParkingSession.site_id == site_id,
            ParkingSession.plate.in_(list(plates_)),
            ParkingSession.status == "open",
        )
    ))
