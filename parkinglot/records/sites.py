"""Sites, zones, lanes and devices: lookups that fail with clear errors, and creation."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from ..billing.tariff_model import TariffError
from ..billing.tariff_model import currency_exponent as _currency_exponent
from . import audit
from .errors import InvalidInput, NotFound
from .models import Device, Lane, Site, Zone
from .types import utcnow

def currency_exponent(code: str) -> int:
    """Minor-unit exponent of an ISO 4217 code (the tariff engine's table), or InvalidInput."""
    try:
        return _currency_exponent(code)
    except TariffError as exc:
        raise InvalidInput(str(exc)) from None


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}") from None


def get_site(session: Session, code: str) -> Site:
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(f"unknown site {code!r}")
    return site


# Statements every lane event runs, built once (construction and cache keys cost more than the query).
_LANE_BY_CODE = select(Lane).options(joinedload(Lane.site)).where(Lane.code == bindparam("code"))
_DEVICE_BY_PREFIX = select(Device).where(Device.key_prefix == bindparam("prefix"))


def get_lane(session: Session, code: str) -> Lane:
    """The lane and (in the same query) its site."""
    lane = session.scalar(_LANE_BY_CODE, {"code": code})
    if lane is None:
        raise NotFound(f"unknown lane {code!r}")
    return lane


def create_site(
    session: Session,
    *,
    code: str,
    name: str,
    timezone: str,
    currency: str,
    plate_region: str = "us",
    capacity: Optional[int] = None,
    actor: audit.Actor = audit.SYSTEM,
    **options: object,
) -> Site:
    check_timezone(timezone)
    currency_exponent(currency)
    site = Site(
        code=code,
        name=name,
        timezone=timezone,
        currency=currency,
        plate_region=plate_region,
        capacity=capacity,
        **{"kpi_targets": {}, **options},
    )
    session.add(site)
    session.flush()
    audit.append(session, "site.created", "site", site.id, {"code": code, "timezone": timezone,
                 "currency": currency}, actor=actor, site_id=site.id)
    return site


def create_zone(session: Session, site: Site, code: str, name: str, capacity: Optional[int] = None) -> Zone:
    zone = Zone(site_id=site.id, code=code, name=name, capacity=capacity)
    session.add(zone)
    session.flush()
    audit.append(session, "zone.created", "zone", zone.id, {"code": code, "capacity": capacity},
                 site_id=site.id)
    return zone


def create_lane(
    session: Session,
    site: Site,
    *,
    code: str,
    name: str,
    direction: str,
    zone: Optional[Zone] = None,
    driver: str = "simulated",
    driver_config: Optional[dict] = None,
) -> Lane:
    if direction not in ("entry", "exit"):
        raise InvalidInput("lane direction must be 'entry' or 'exit'")
    lane = Lane(
        site_id=site.id,
        zone_id=zone.id if zone else None,
        code=code,
        name=name,
        direction=direction,
        driver=driver,
        driver_config=driver_config or {},
    )
    session.add(lane)
    session.flush()
    audit.append(session, "lane.created", "lane", lane.id, {"code": code, "direction": direction},
                 site_id=site.id)
    return lane


# --- device keys -----------------------------------------------------------------

KEY_PREFIX_LEN = 12


def hash_key(key: str) -> str:
    """API keys are 256-bit random tokens, so one SHA-256 is enough (no slow KDF needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    device: Device
    key: str  # shown once, never stored


def create_device(session: Session, site: Site, name: str, *, key: Optional[str] = None,
                  actor: audit.Actor = audit.SYSTEM) -> IssuedKey:
    """Register a controller and return its key; only the key's hash is kept."""
    key = key or f"pl_{secrets.token_hex(KEY_PREFIX_LEN // 2)}_{secrets.token_urlsafe(32)}"
    prefix = key_prefix(key)
    if prefix is None:
        raise InvalidInput("malformed API key")
    device = Device(site_id=site.id, name=name, key_prefix=prefix, key_hash=hash_key(key))
    session.add(device)
    session.flush()
    audit.append(session, "device.created", "device", device.id, {"name": name, "key_prefix": prefix},
                 actor=actor, site_id=site.id)
    return IssuedKey(device, key)


def key_prefix(key: str) -> Optional[str]:
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "pl" or len(parts[1]) != KEY_PREFIX_LEN:
        return None
    return parts[1]


def _key_holds(device: Optional[Device], key: str) -> bool:
    return device is not None and hmac.compare_digest(device.key_hash, hash_key(key)) and device.revoked_at is None


def authenticate_device(session: Session, key: str) -> Optional[Device]:
    """The device for ``key`` if it exists and is not revoked, else None."""
    prefix = key_prefix(key or "")
    if prefix is None:
        return None
    device = session.scalar(_DEVICE_BY_PREFIX, {"prefix": prefix})
    return device if _key_holds(device, key) else None


# The lane controller's every event: its device and the lane (with its site) in one round trip.
_DEVICE_AND_LANE = (
    select(Device, Lane)
    .outerjoin(Lane, Lane.code == bindparam("code"))
    .outerjoin(Site, Site.id == Lane.site_id)
    .options(contains_eager(Lane.site))
    .where(Device.key_prefix == bindparam("prefix"))
)


def device_and_lane(session: Session, key: str, lane_code: str) -> tuple[Optional[Device], Optional[Lane]]:
    """``authenticate_device`` and the lane named ``lane_code`` (site loaded), read together.

    ``(None, None)`` for a bad or revoked key; ``(device, None)`` for an unknown lane.
    Nothing is cached: a revoked key or a disabled lane counts from the next request.
    """
    prefix = key_prefix(key or "")
    if prefix is None:
        return None, None
    row = session.execute(_DEVICE_AND_LANE, {"prefix": prefix, "code": lane_code}).first()
    if row is None or not _key_holds(row[0], key):
        return None, None
    return row[0], row[1]


def revoke_device(session: Session, device: Device, *, actor: audit.Actor = audit.SYSTEM) -> None:
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        audit.append(session, "device.revoked", "device", device.id, {}, actor=actor,
                     site_id=device.site_id)
