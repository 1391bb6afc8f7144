"""Plate reads: every recognition event, stored with its evidence before any decision."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import plates
from .errors import Conflict, InvalidInput
from .models import Evidence, Lane, PlateRead, ReadFrame


@dataclass(frozen=True)
class ReadInput:
    """What a lane reported (or what the pipeline read from its frames)."""

    lane: Lane
    captured_at: datetime
    received_at: datetime
    plate: str = ""
    raw_text: str = ""
    confidence: float = 0.0
    candidates: Sequence[dict[str, Any]] = ()
    box: Optional[Sequence[Any]] = None
    region: str = "us"
    source: str = "pipeline"
    event_id: Optional[str] = None
    device_id: Optional[int] = None
    ticket: Optional[str] = None
    no_plate_reason: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)
    frames: Sequence[Evidence] = ()
    best_frame: int = 0
    request_digest: Optional[str] = None
    retry_of_id: Optional[int] = None
    reused_event_id: Optional[str] = None


class DuplicateEvent(Conflict):
    """A read with this (lane, event_id) is already stored."""

    code = "duplicate_event"


def find_by_event(session: Session, lane_id: int, event_id: str) -> Optional[PlateRead]:
    return session.scalar(
        select(PlateRead).where(PlateRead.lane_id == lane_id, PlateRead.event_id == event_id)
    )


def find_recent_duplicate(
    session: Session, lane: Lane, plate: str, at: datetime, window_s: int
) -> Optional[PlateRead]:
    """The first read of ``plate`` on ``lane`` within ``window_s`` before ``at``, if any."""
    if not plate or window_s <= 0:
        return None
    return session.scalar(_RECENT_FIRST_READ, {"site_id": lane.site_id, "plate": plate, "lane_id": lane.id,
                                               "since": at - timedelta(seconds=window_s)})


_RECENT_FIRST_READ = (  # built once: every plate read on a site with a duplicate window asks
    select(PlateRead)
    .where(
        PlateRead.site_id == bindparam("site_id"),
        PlateRead.plate == bindparam("plate"),
        PlateRead.lane_id == bindparam("lane_id"),
        PlateRead.received_at >= bindparam("since"),
        PlateRead.duplicate_of_id.is_(None),
    )
    .order_by(PlateRead.received_at.desc())
    .limit(1)
)


def _check(inp: ReadInput) -> None:
    if inp.plate:
        try:
            plates.validate(inp.plate)
        except plates.PlateError as exc:
            raise InvalidInput(str(exc)) from None
    if not 0.0 <= inp.confidence <= 1.0:
        raise InvalidInput("confidence must be between 0 and 1")


def _columns(inp: ReadInput, duplicate_of_id: Optional[int]) -> dict[str, Any]:
    """The ``plate_read`` row for ``inp`` (validated by ``_check``), by column name."""
    best = inp.frames[inp.best_frame] if inp.frames else None
    return dict(
        site_id=inp.lane.site_id,
        lane_id=inp.lane.id,
        device_id=inp.device_id,
        event_id=inp.event_id,
        captured_at=inp.captured_at,
        received_at=inp.received_at,
        raw_text=(inp.raw_text or "")[:64],
        plate=inp.plate,
        confidence=float(inp.confidence),
        candidates=list(inp.candidates),
        box=list(inp.box) if inp.box is not None else None,
        region=inp.region,
        source=inp.source,
        no_plate_reason=inp.no_plate_reason,
        ticket=inp.ticket,
        timings=dict(inp.timings),
        evidence_sha256=best.sha256 if best is not None else None,
        duplicate_of_id=duplicate_of_id,
        request_digest=inp.request_digest,
        retry_of_id=inp.retry_of_id,
        reused_event_id=inp.reused_event_id,
    )


def store_read(session: Session, inp: ReadInput) -> PlateRead:
    """Insert the read and its frames. A second insert of the same event id raises
    ``DuplicateEvent`` and leaves the surrounding transaction usable (the lane-event
    path uses ``insert_read`` instead)."""
    _check(inp)
    read = PlateRead(**_columns(inp, None),
                     frames=[ReadFrame(position=i, evidence_sha256=ev.sha256) for i, ev in enumerate(inp.frames)])
    _insert_guarded(session, read, inp)
    return read


@dataclass(frozen=True)
class StoredRead:
    """What the lane path needs of a read it has just inserted."""

    id: int
    plate: str
    confidence: float
    candidates: list[dict[str, Any]]
    timings: dict[str, Any]
    # SHA-256 of the read's photos (frames in order): the decision's audit event names
    # them, so an evidence bundle can show the photos were recorded then and not swapped
    photos: tuple[str, ...] = ()


# Built once: the lane path inserts a read per event, without the unit of work's overhead.
_INSERT_READ = insert(PlateRead.__table__).returning(PlateRead.__table__.c.id)
_INSERT_FRAMES = insert(ReadFrame.__table__)


def insert_read(session: Session, inp: ReadInput, *, duplicate_of_id: Optional[int] = None) -> StoredRead:
    """Insert the read and its frames with plain INSERTs (no ORM object, no savepoint).

    For the lane-event path: a second insert of the same (lane, event id) raises the
    database's IntegrityError and the caller retries the whole transaction.
    """
    _check(inp)
    row = _columns(inp, duplicate_of_id)
    session.flush()  # plain statements don't autoflush: pending rows this one points to (evidence) go first
    read_id = session.execute(_INSERT_READ, row).scalar_one()
    if inp.frames:
        session.execute(_INSERT_FRAMES, [{"read_id": read_id, "position": i, "evidence_sha256": ev.sha256}
                                         for i, ev in enumerate(inp.frames)])
    return StoredRead(read_id, row["plate"], row["confidence"], row["candidates"], row["timings"],
                      tuple(ev.sha256 for ev in inp.frames))


def _insert_guarded(session: Session, read: PlateRead, inp: ReadInput) -> None:
    try:
        with session.begin_nested():
            session.add(read)
            session.flush()
    except IntegrityError as exc:
        if inp.event_id is not None and find_by_event(session, inp.lane.id, inp.event_id) is not None:
            raise DuplicateEvent("this event id was already recorded", event_id=inp.event_id) from None
        raise exc
