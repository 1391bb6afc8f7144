"""Per-vehicle flags that stop a car: the hotlist and the owner's vehicle lock."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit
from .errors import Conflict, NotFound
from .models import HotlistEntry, VehicleLock
from .types import utcnow


# Built once: every lane event checks these (bind site_id, plate).
HOTLISTED = (HotlistEntry.plate == bindparam("plate"), HotlistEntry.removed_at.is_(None),
              or_(HotlistEntry.site_id.is_(None), HotlistEntry.site_id == bindparam("site_id")))
_LOCKED = (VehicleLock.site_id == bindparam("site_id"), VehicleLock.plate == bindparam("plate"),
           VehicleLock.released_at.is_(None))
_HOTLIST_HIT = select(HotlistEntry).where(*HOTLISTED).limit(1)
_ACTIVE_LOCK = select(VehicleLock).where(*_LOCKED)
_STOP_FLAGS = select(exists().where(*HOTLISTED), exists().where(*_LOCKED))


def hotlist_hit(session: Session, site_id: int, plate: str) -> Optional[HotlistEntry]:
    if not plate:
        return None
    return session.scalar(_HOTLIST_HIT, {"site_id": site_id, "plate": plate})


def stop_flags(session: Session, site_id: int, plate: str) -> tuple[bool, bool]:
    """``(hotlisted, locked)`` for ``plate`` at the site, in one query (what an exit asks first)."""
    if not plate:
        return False, False
    hotlisted, locked = session.execute(_STOP_FLAGS, {"site_id": site_id, "plate": plate}).one()
    return bool(hotlisted), bool(locked)


def add_to_hotlist(session: Session, *, plate: str, reason: str, site_id: Optional[int] = None,
                   source: str = "manual", user_id: Optional[int] = None) -> HotlistEntry:
    entry = HotlistEntry(site_id=site_id, plate=plate, reason=reason, source=source, created_by=user_id)
    session.add(entry)
    session.flush()
    audit.append(session, "hotlist.added", "hotlist", entry.id,
                 {"plate": plate, "reason": reason, "source": source},
                 actor=audit.Actor.user(user_id) if user_id else audit.SYSTEM, site_id=site_id)
    return entry


def remove_from_hotlist(session: Session, entry: HotlistEntry, user_id: int, note: str = "") -> None:
    if entry.removed_at is not None:
        raise Conflict("hotlist entry already removed")
    entry.removed_at = utcnow()
    entry.removed_by = user_id
    audit.append(session, "hotlist.removed", "hotlist", entry.id, {"plate": entry.plate, "note": note},
                 actor=audit.Actor.user(user_id), site_id=entry.site_id)


def active_lock(session: Session, site_id: int, plate: str) -> Optional[VehicleLock]:
    if not plate:
        return None
    return session.scalar(_ACTIVE_LOCK, {"site_id": site_id, "plate": plate})


def lock_vehicle(session: Session, *, site_id: int, plate: str, user_id: Optional[int],
                 note: str = "", permit_id: Optional[int] = None) -> VehicleLock:
    lock = VehicleLock(site_id=site_id, plate=plate, note=note, locked_by=user_id, permit_id=permit_id)
    try:
        with session.begin_nested():
            session.add(lock)
            session.flush()
    except IntegrityError:
        raise Conflict(f"{plate} is already locked") from None
    audit.append(session, "vehicle.locked", "vehicle_lock", lock.id, {"plate": plate, "note": note},
                 actor=audit.Actor.user(user_id) if user_id else audit.SYSTEM, site_id=site_id)
    return lock


def release_lock(session: Session, *, site_id: int, plate: str, user_id: Optional[int], note: str = "") -> VehicleLock:
    lock = active_lock(session, site_id, plate)
    if lock is None:
        raise NotFound(f"{plate} is not locked")
    lock.released_at = utcnow()
    lock.released_by = user_id
    audit.append(session, "vehicle.unlocked", "vehicle_lock", lock.id, {"plate": plate, "note": note},
                 actor=audit.Actor.user(user_id) if user_id else audit.SYSTEM, site_id=site_id)
    return lock
