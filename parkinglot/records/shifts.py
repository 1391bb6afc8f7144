"""Attendant shifts: start with a note, end with a handover note for whoever comes next.

A manual action (a barrier opened by hand) is tied to the shift on duty when it
is recorded (``barrier.lanes.manual_open`` looks the open shift up), so a shift
log can say who opened what, and why, during which shift.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict, InvalidInput
from .models import Decision, Shift, Site, User
from .types import utcnow

NOTE_MAX = 2000


def open_shift(session: Session, user_id: int) -> Optional[Shift]:
    return session.scalar(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None)))


def start_shift(session: Session, user: User, site: Site, note: str = "", *, now: Optional[datetime] = None) -> Shift:
    """Open a shift at ``site``; one open shift per person (the database refuses a second)."""
    if open_shift(session, user.id) is not None:
        raise Conflict("you are already on shift; end it before starting another")
    shift = Shift(user_id=user.id, site_id=site.id, started_at=now or utcnow(), start_note=(note or "")[:NOTE_MAX])
    try:
        with session.begin_nested():
            session.add(shift)
            session.flush()
    except IntegrityError:
        raise Conflict("you are already on shift; end it before starting another") from None
    audit.append(session, "shift.started", "shift", shift.id, {"user": user.username, "note": shift.start_note},
                 actor=audit.Actor.user(user.id), site_id=site.id)
    return shift


def end_shift(session: Session, user: User, handover_note: str, *, now: Optional[datetime] = None) -> Shift:
    """Close the user's open shift; the handover note is required (the next attendant reads it)."""
    shift = open_shift(session, user.id)
    if shift is None:
        raise Conflict("you are not on shift")
    note = (handover_note or "").strip()
    if not note:
        raise InvalidInput("write a handover note for the next attendant")
    shift.ended_at = now or utcnow()
    shift.handover_note = note[:NOTE_MAX]
    audit.append(session, "shift.ended", "shift", shift.id, {"user": user.username, "handover_note": shift.handover_note},
                 actor=audit.Actor.user(user.id), site_id=shift.site_id)
    session.flush()
    return shift


def last_handover(session: Session, site_id: int) -> Optional[tuple[Shift, User]]:
    """The most recent ended shift at the site, for the next attendant to read."""
    row = session.execute(
        select(Shift, User).join(User, User.id == Shift.user_id)
        .where(Shift.site_id == site_id, Shift.ended_at.is_not(None))
        .order_by(Shift.ended_at.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class ShiftRow:
    shift: Shift
    user: User
    manual_opens: int


def shift_log(session: Session, site_ids: Sequence[int], start: datetime, end: datetime, *,
              limit: int = 25, offset: int = 0) -> tuple[list[ShiftRow], bool]:
    """Shifts that overlap ``[start, end)``, newest first, each with its count of manual opens.

    The counts come from one aggregate over the page's time span on the
    ``(site_id, created_at)`` decision index, grouped by shift.
    """
    if end <= start:
        raise InvalidInput("the end of the period must be after its start")
    if not site_ids:
        return [], False
    rows = session.execute(
        select(Shift, User).join(User, User.id == Shift.user_id)
        .where(Shift.site_id.in_(list(site_ids)), Shift.started_at < end,
               or_(Shift.ended_at.is_(None), Shift.ended_at >= start))
        .order_by(Shift.started_at.desc(), Shift.id.desc()).limit(limit + 1).offset(offset)
    ).all()
    page = rows[:limit]
    counts: dict[int, int] = {}
    if page:
        first = min(s.started_at for s, _ in page)
        last = max(s.ended_at or utcnow() for s, _ in page)
        counts = dict(session.execute(
            select(Decision.shift_id, func.count())
            .where(Decision.site_id.in_({s.site_id for s, _ in page}), Decision.created_at >= first,
                   Decision.created_at <= last, Decision.actor == "user",
                   and_(Decision.shift_id.in_([s.id for s, _ in page])))
            .group_by(Decision.shift_id)
        ).all())
    return [ShiftRow(s, u, counts.get(s.id, 0)) for s, u in page], len(rows) > limit
