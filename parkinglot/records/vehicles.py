"""Per-vehicle flags that stop a car: the hotlist and the owner's vehicle lock.

Both are probed with the same confusion-aware keys as the fuzzy stay search
(``plates.index_keys``: look-alike characters folded, one character dropped), so a
read of a stopped plate as ``UPST0LE1``, ``UPSTOLEI`` or ``UPSTOLE`` is still caught.
An exact hit and a look-alike hit are told apart: the gate denies the first and sends
the second to an attendant; neither ever opens.
"""
from __future__ import annotations

from typing import Literal, Optional

from sqlalchemy import bindparam, exists, insert, literal, or_, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import plates
from ..barrier.decide import StopHit
from . import audit
from .errors import Conflict, InvalidInput, NotFound
from .models import HotlistEntry, StopKey, VehicleLock
from .types import utcnow

# Built once: every lane event with a plate probes these (binds site_id, keys).
_ACTIVE_HOTLIST = (HotlistEntry.removed_at.is_(None),
                   or_(HotlistEntry.site_id.is_(None), HotlistEntry.site_id == bindparam("site_id")))
_ACTIVE_LOCK_AT_SITE = (VehicleLock.site_id == bindparam("site_id"), VehicleLock.released_at.is_(None))
_KEY_IN = StopKey.key.in_(bindparam("keys", expanding=True))
STOPPED = exists(select(StopKey.id).join(HotlistEntry, HotlistEntry.id == StopKey.hotlist_entry_id)
                 .where(_KEY_IN, *_ACTIVE_HOTLIST)) | exists(
    select(StopKey.id).join(VehicleLock, VehicleLock.id == StopKey.vehicle_lock_id)
    .where(_KEY_IN, *_ACTIVE_LOCK_AT_SITE))
_STOP_HITS = union_all(
    select(literal("hotlist").label("kind"), HotlistEntry.id, HotlistEntry.plate, HotlistEntry.reason.label("note"))
    .join(StopKey, StopKey.hotlist_entry_id == HotlistEntry.id).where(_KEY_IN, *_ACTIVE_HOTLIST),
    select(literal("lock").label("kind"), VehicleLock.id, VehicleLock.plate, VehicleLock.note)
    .join(StopKey, StopKey.vehicle_lock_id == VehicleLock.id).where(_KEY_IN, *_ACTIVE_LOCK_AT_SITE),
)
_ACTIVE_LOCK = select(VehicleLock).where(VehicleLock.plate == bindparam("plate"), *_ACTIVE_LOCK_AT_SITE)
_HOTLIST_EXACT = select(HotlistEntry).where(HotlistEntry.plate == bindparam("plate"), *_ACTIVE_HOTLIST).limit(1)


def probe_params(site_id: int, plate: str) -> dict[str, object]:
    """The bind parameters of ``STOPPED`` for a read of ``plate``."""
    return {"site_id": site_id, "keys": sorted(plates.index_keys(plate))}


def stop_hits(session: Session, site_id: int, plate: str) -> list[StopHit]:
    """Every active hotlist entry and lock of the site that ``plate`` matches or looks like,
    strongest first: exact before look-alike, hotlist before lock, nearest plate first."""
    if not plate:
        return []
    rows = session.execute(_STOP_HITS, probe_params(site_id, plate)).all()
    hits = {(kind, row_id): StopHit(kind, row_id, listed, listed == plate, note or "")
            for kind, row_id, listed, note in rows}
    return sorted(hits.values(), key=lambda h: (not h.exact, h.kind != "hotlist",
                                                plates.distance(plate, h.plate), h.id))


def strongest_stop(session: Session, site_id: int, plate: str) -> Optional[StopHit]:
    hits = stop_hits(session, site_id, plate)
    return hits[0] if hits else None


def describe(hit: StopHit, read_plate: str) -> str:
    """One line for an alert or a page: which entry the read matched, and how."""
    what = "hotlisted" if hit.kind == "hotlist" else "locked"
    listed = f"{what} {hit.plate}" if hit.exact else f"look-alike of {what} {hit.plate}"
    ref = f"hotlist entry #{hit.id}" if hit.kind == "hotlist" else f"lock #{hit.id}"
    note = f": {hit.note}" if hit.note else ""
    return f"{read_plate} is {listed} ({ref}{note})"


def hotlist_hit(session: Session, site_id: int, plate: str) -> Optional[HotlistEntry]:
    """The active hotlist entry for exactly ``plate`` (imports and pages; the gate uses ``stop_hits``)."""
    if not plate:
        return None
    return session.scalar(_HOTLIST_EXACT, {"site_id": site_id, "plate": plate})


def _valid_plate(plate: str) -> str:
    """A stop-list entry must be a normalised plate, or its keys would never match a read."""
    try:
        return plates.validate(plate)
    except plates.PlateError as exc:
        raise InvalidInput(str(exc)) from None


def _register_keys(session: Session, plate: str, target: Literal["hotlist_entry_id", "vehicle_lock_id"],
                   row_id: int) -> None:
    session.execute(insert(StopKey), [{"key": key, target: row_id} for key in sorted(plates.index_keys(plate))])


def add_to_hotlist(session: Session, *, plate: str, reason: str, site_id: Optional[int] = None,
                   source: str = "manual", user_id: Optional[int] = None) -> HotlistEntry:
    plate = _valid_plate(plate)
    entry = HotlistEntry(site_id=site_id, plate=plate, reason=reason, source=source, created_by=user_id)
    session.add(entry)
    session.flush()
    _register_keys(session, plate, "hotlist_entry_id", entry.id)
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
    plate = _valid_plate(plate)
    lock = VehicleLock(site_id=site_id, plate=plate, note=note, locked_by=user_id, permit_id=permit_id)
    try:
        with session.begin_nested():
            session.add(lock)
            session.flush()
    except IntegrityError:
        raise Conflict(f"{plate} is already locked") from None
    _register_keys(session, plate, "vehicle_lock_id", lock.id)
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
