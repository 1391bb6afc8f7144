"""Parking sessions (stays): opening on entry, closing on exit, expiring overdue ones.

Two invariants are enforced by the database, not only by this code: one open
stay per plate and site (partial unique index), and a stay closes once (the
close is a conditional UPDATE ... WHERE status = 'open', so of two racing exits
exactly one changes a row).
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Optional

from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from . import alerts, audit, lookup, revenue_rollup
from .errors import Conflict
from .models import ParkingSession, Site
from .types import utcnow


class AlreadyInside(Conflict):
    code = "already_inside"


class AlreadyClosed(Conflict):
    code = "already_closed"


def new_ticket() -> str:
    """A ticket code that is hard to guess (printed as QR or on a card)."""
    return secrets.token_hex(6).upper()


_stay = ParkingSession.__table__
_INSERT = insert(_stay).returning(_stay.c.id)  # built once
_OPENED = "parkinglot_opened_stays"


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_stays(session: Session, previous_transaction: Any) -> None:
    """A stay attached by ``open_stay`` is not "new" to the session, so a rollback would leave
    it in the identity map for a row that no longer exists; drop it with its transaction."""
    opened = session.info.get(_OPENED)
    if not opened:
        return
    keep = []
    for stay, txn in opened:
        if audit.within_transaction(txn, previous_transaction):
            if stay in session:
                session.expunge(stay)
        else:
            keep.append((stay, txn))
    session.info[_OPENED] = keep


@event.listens_for(Session, "after_commit")
def _forget_committed_stays(session: Session) -> None:
    session.info.pop(_OPENED, None)


def open_stay(
    session: Session,
    *,
    site_id: int,
    plate: str,
    entered_at: datetime,
    entry_lane_id: Optional[int] = None,
    entry_read_id: Optional[int] = None,
    zone_id: Optional[int] = None,
    ticket: Optional[str] = None,
    tariff_version_id: Optional[int] = None,
    permit_id: Optional[int] = None,
    visitor_pass_id: Optional[int] = None,
    reentry_of_id: Optional[int] = None,
    actor: audit.Actor = audit.SYSTEM,
    savepoint: bool = True,
) -> ParkingSession:
    """Start a stay. A second open stay for the plate raises ``AlreadyInside`` (the surrounding
    transaction stays usable); with ``savepoint=False`` the database's IntegrityError propagates
    instead and the caller retries the whole transaction (one round trip fewer each way).

    A plain ``INSERT .. RETURNING`` (every car at an entry lane comes here): the ORM's unit of
    work cost more than the statement. The returned stay is attached to the session as if
    loaded, with every column set to what was written.
    """
    values = dict(site_id=site_id, zone_id=zone_id, plate=plate, status="open", entered_at=entered_at,
                  exited_at=None, entry_lane_id=entry_lane_id, exit_lane_id=None, entry_read_id=entry_read_id,
                  exit_read_id=None, ticket=ticket, tariff_version_id=tariff_version_id, permit_id=permit_id,
                  visitor_pass_id=visitor_pass_id, reentry_of_id=reentry_of_id, fee_minor=None, lost_ticket=False,
                  closed_reason=None, created_at=utcnow())
    session.flush()  # rows the stay points to that the ORM still holds go first
    if savepoint:
        try:
            with session.begin_nested():
                stay_id = session.execute(_INSERT, values).scalar_one()
        except IntegrityError:
            if lookup.open_stay_for(session, site_id, plate) is not None:
                raise AlreadyInside(f"{plate} already has an open stay at this site", plate=plate) from None
            raise
    else:
        stay_id = session.execute(_INSERT, values).scalar_one()
    stay = ParkingSession(id=stay_id, **values)
    make_transient_to_detached(stay)  # persistent without a second INSERT; relationships load on use
    session.add(stay)
    session.info.setdefault(_OPENED, []).append((stay, session.get_nested_transaction() or session.get_transaction()))
    lookup.register_plate(session, site_id, plate)
    audit.append(
        session, "stay.opened", "stay", stay.id,
        {"plate": plate, "entered_at": entered_at, "lane_id": entry_lane_id, "read_id": entry_read_id,
         "ticket": ticket, "tariff_version_id": tariff_version_id, "permit_id": permit_id,
         "visitor_pass_id": visitor_pass_id},
        actor=actor, site_id=site_id,
    )
    return stay


_CLOSE = (  # built once (every exit); a plain UPDATE, the loaded stay is mirrored below
    update(_stay)
    .where(_stay.c.id == bindparam("stay_id"), _stay.c.status == "open")
    .values(status=bindparam("new_status"), exited_at=bindparam("new_exited_at"),
            exit_lane_id=bindparam("new_exit_lane_id"), exit_read_id=bindparam("new_exit_read_id"),
            fee_minor=bindparam("new_fee_minor"), closed_reason=bindparam("new_reason"))
)


def close_stay(
    session: Session,
    stay: ParkingSession,
    *,
    exited_at: datetime,
    exit_lane_id: Optional[int] = None,
    exit_read_id: Optional[int] = None,
    fee_minor: Optional[int] = None,
    reason: str = "exit",
    status: str = "closed",
    actor: audit.Actor = audit.SYSTEM,
) -> ParkingSession:
    """Close an open stay exactly once; a concurrent second close raises ``AlreadyClosed``."""
    exited_at = max(exited_at, stay.entered_at)
    result = session.execute(_CLOSE, {"stay_id": stay.id, "new_status": status, "new_exited_at": exited_at,
                                      "new_exit_lane_id": exit_lane_id, "new_exit_read_id": exit_read_id,
                                      "new_fee_minor": fee_minor, "new_reason": reason})
    if result.rowcount != 1:
        raise AlreadyClosed(f"stay {stay.id} is no longer open", session_id=stay.id)
    # mirror the row we just wrote instead of reading it back
    for name, value in (("status", status), ("exited_at", exited_at), ("exit_lane_id", exit_lane_id),
                        ("exit_read_id", exit_read_id), ("fee_minor", fee_minor), ("closed_reason", reason)):
        set_committed_value(stay, name, value)
    # payments taken without a lane (pay station, refunds) are credited to the lane it left by
    revenue_rollup.stay_exited(session, stay.site_id, stay.id, exit_lane_id)
    audit.append(
        session, f"stay.{status}", "stay", stay.id,
        {"plate": stay.plate, "exited_at": exited_at, "lane_id": exit_lane_id, "read_id": exit_read_id,
         "fee_minor": fee_minor, "reason": reason},
        actor=actor, site_id=stay.site_id,
    )
    return stay


def expire_overdue(session: Session, site: Site, *, now: Optional[datetime] = None) -> list[ParkingSession]:
    """Mark stays open past the site's maximum as ``expired`` and raise one alert each."""
    now = now or utcnow()
    cutoff = now - timedelta(hours=site.max_stay_hours)
    overdue = session.scalars(
        select(ParkingSession)
        .where(ParkingSession.site_id == site.id, ParkingSession.status == "open",
               ParkingSession.entered_at < cutoff)
        .order_by(ParkingSession.entered_at)
    ).all()
    expired: list[ParkingSession] = []
    for stay in overdue:
        result = session.execute(
            update(ParkingSession)
            .where(ParkingSession.id == stay.id, ParkingSession.status == "open")
            .values(status="expired", closed_reason="max_stay_exceeded")
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            continue
        session.refresh(stay)
        audit.append(session, "stay.expired", "stay", stay.id,
                     {"plate": stay.plate, "entered_at": stay.entered_at, "max_stay_hours": site.max_stay_hours},
                     site_id=site.id)
        alerts.raise_alert(
            session, site_id=site.id, kind="expired_stay", plate=stay.plate, session_id=stay.id,
            message=f"{stay.plate} has been inside longer than {site.max_stay_hours} h",
        )
        expired.append(stay)
    return expired


def occupancy(session: Session, site_id: int) -> dict[Optional[int], int]:
    """Open stays per zone (``None`` = no zone) at a site."""
    rows = session.execute(
        select(ParkingSession.zone_id, func.count())
        .where(ParkingSession.site_id == site_id, ParkingSession.status == "open")
        .group_by(ParkingSession.zone_id)
    ).all()
    return {zone_id: count for zone_id, count in rows}


def by_ticket(session: Session, site_id: int, ticket: str) -> Optional[ParkingSession]:
    return session.scalar(
        select(ParkingSession).where(ParkingSession.site_id == site_id, ParkingSession.ticket == ticket)
    )
