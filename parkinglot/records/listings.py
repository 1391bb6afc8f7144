"""Paginated lists for the console: alerts, hotlist, permits, vehicle locks, visitor passes, disputes.

Each list reads one index range and fetches ``limit + 1`` rows to know whether a
next page exists; nothing counts a whole table.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from .. import plates
from .errors import InvalidInput
from .models import ALERT_KINDS, Alert, Dispute, HotlistEntry, Permit, PermitVehicle, VehicleLock, VisitorPass


ALERT_FILTERS = {
    "active": ("open", "acknowledged"),
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
}


def alert_page(session: Session, site_ids: Sequence[int], *, state: str = "active", kind: Optional[str] = None,
               limit: int = 50, offset: int = 0) -> tuple[list[Alert], bool]:
    """Alerts newest first, filtered by state and kind; one ``(site_id, status, created_at)`` range per status."""
    statuses = ALERT_FILTERS.get(state)
    if statuses is None:
        raise InvalidInput(f"state must be one of {', '.join(ALERT_FILTERS)}")
    if kind is not None and kind not in ALERT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(ALERT_KINDS)}")
    if not site_ids:
        return [], False
    stmt = select(Alert).where(Alert.site_id.in_(list(site_ids)), Alert.status.in_(statuses))
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    rows = list(session.scalars(stmt.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit + 1).offset(offset)))
    return rows[:limit], len(rows) > limit


def active_hotlist(session: Session, site_ids: Sequence[int]) -> list[HotlistEntry]:
    """Entries that stop a car at any of ``site_ids`` (site-specific and every-site ones)."""
    return list(session.scalars(
        select(HotlistEntry)
        .where(HotlistEntry.removed_at.is_(None),
               or_(HotlistEntry.site_id.is_(None), HotlistEntry.site_id.in_(list(site_ids))))
        .order_by(HotlistEntry.plate)))



def current_permits(session: Session, site_id: int, *, query: str = "", limit: int = 50, offset: int = 0
                    ) -> tuple[list[Permit], bool]:
    """Current versions, by number; ``query`` matches a number prefix or a vehicle's plate exactly."""
    stmt = select(Permit).options(selectinload(Permit.vehicles)).where(
        Permit.site_id == site_id, Permit.superseded_at.is_(None))
    query = query.strip()
    if query:
        plate = plates.normalize(query)
        by_plate = select(PermitVehicle.permit_id).where(PermitVehicle.plate == plate)
        stmt = stmt.where(or_(Permit.number.startswith(query, autoescape=True), Permit.id.in_(by_plate)))
    rows = list(session.scalars(stmt.order_by(Permit.number).limit(limit + 1).offset(offset)))
    return rows[:limit], len(rows) > limit


def active_locks(session: Session, site_id: int, plates_: Optional[Sequence[str]] = None) -> list[VehicleLock]:
    stmt = select(VehicleLock).where(VehicleLock.site_id == site_id, VehicleLock.released_at.is_(None))
    if plates_ is not None:
        stmt = stmt.where(VehicleLock.plate.in_(list(plates_)))
    return list(session.scalars(stmt.order_by(VehicleLock.plate)))


PASS_FILTERS = ("current", "expired", "revoked", "all")


def visitor_passes(session: Session, site_id: int, now: datetime, *, show: str = "current", limit: int = 50,
                   offset: int = 0) -> tuple[list[VisitorPass], bool]:
    """Passes newest first. current: not revoked and not yet ended; expired: ended, not revoked."""
    if show not in PASS_FILTERS:
        raise InvalidInput(f"show must be one of {', '.join(PASS_FILTERS)}")
    stmt = select(VisitorPass).where(VisitorPass.site_id == site_id)
    if show == "current":
        stmt = stmt.where(VisitorPass.revoked_at.is_(None), VisitorPass.valid_to > now)
    elif show == "expired":
        stmt = stmt.where(VisitorPass.revoked_at.is_(None), VisitorPass.valid_to <= now)
    elif show == "revoked":
        stmt = stmt.where(VisitorPass.revoked_at.is_not(None))
    rows = list(session.scalars(stmt.order_by(VisitorPass.valid_from.desc(), VisitorPass.id.desc())
                                .limit(limit + 1).offset(offset)))
    return rows[:limit], len(rows) > limit


DISPUTE_FILTERS = ("open", "resolved")


def disputes_page(session: Session, site_ids: Sequence[int], *, state: str = "open", limit: int = 50,
                  offset: int = 0) -> tuple[list[Dispute], bool]:
    """Open disputes oldest first (the most urgent on top); resolved ones newest first."""
    if state not in DISPUTE_FILTERS:
        raise InvalidInput(f"state must be one of {', '.join(DISPUTE_FILTERS)}")
    if not site_ids:
        return [], False
    stmt = select(Dispute).where(Dispute.site_id.in_(list(site_ids)), Dispute.status == state)
    order = (Dispute.opened_at, Dispute.id) if state == "open" else (Dispute.opened_at.desc(), Dispute.id.desc())
    rows = list(session.scalars(stmt.order_by(*order).limit(limit + 1).offset(offset)))
    return rows[:limit], len(rows) > limit
