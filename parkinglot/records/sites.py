"""Sites, zones, lanes and devices: lookups that fail with clear errors, and creation."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from ..billing.tariff_model import TariffError
from ..billing.tariff_model import currency_exponent as _currency_exponent
from . import audit
from .errors import InvalidInput, NotFound
from .models import (DEFAULT_VISITORS, DEVICE_KINDS, SITE_KINDS, VISITOR_PASS_PRICING, VISITOR_POLICIES, Device, Lane,
                     Site, Zone)
from .types import utcnow

# Site, zone and lane codes: short, readable in URLs, logs and on the controller's screen.
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def check_code(code: str, what: str) -> str:
    if not isinstance(code, str) or not CODE.fullmatch(code):
        raise InvalidInput(f"{code!r} is not a valid {what} code: use 1-32 letters, digits, '.', '_' or '-'")
    return code


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
# the device's site comes in the same query (a pay station needs it for every request)
_DEVICE_BY_PREFIX = select(Device).options(joinedload(Device.site)).where(Device.key_prefix == bindparam("prefix"))


def get_lane(session: Session, code: str) -> Lane:
    """The lane and (in the same query) its site."""
    lane = session.scalar(_LANE_BY_CODE, {"code": code})
    if lane is None:
        raise NotFound(f"unknown lane {code!r}")
    return lane


def check_regions(regions: Sequence[str]) -> list[str]:
    """A non-empty list of known plate regions, without repeats (the first is the main one)."""
    from ..lpr.formats import REGIONS

    if isinstance(regions, str) or not regions:
        raise InvalidInput(f"plate_regions must be a non-empty list of regions ({', '.join(REGIONS)})")
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise InvalidInput(f"unknown plate region {unknown[0]!r}; known: {', '.join(REGIONS)}")
    return list(dict.fromkeys(regions))


def check_visitor_policy(kind: str, visitors: Optional[str]) -> str:
    """The site's visitor policy: as given, else the default of its kind."""
    if kind not in SITE_KINDS:
        raise InvalidInput(f"site kind must be one of {', '.join(SITE_KINDS)}; got {kind!r}")
    if visitors is None:
        return DEFAULT_VISITORS[kind]
    if visitors not in VISITOR_POLICIES:
        raise InvalidInput(f"visitors must be one of {', '.join(VISITOR_POLICIES)}; got {visitors!r}")
    return visitors


def check_pass_pricing(pricing: str) -> str:
    """What a visitor pass changes about the fee: ``tariff`` (nothing), ``free`` or ``visitor_rate``
    (the tariff's rate named ``visitor``) during the pass's window."""
    if pricing not in VISITOR_PASS_PRICING:
        raise InvalidInput(f"visitor_pass_pricing must be one of {', '.join(VISITOR_PASS_PRICING)}; got {pricing!r}")
    return pricing


def create_site(
    session: Session,
    *,
    code: str,
    name: str,
    timezone: str,
    currency: str,
    plate_region: Optional[str] = None,
    plate_regions: Optional[Sequence[str]] = None,
    capacity: Optional[int] = None,
    kind: str = "public",
    visitors: Optional[str] = None,
    actor: audit.Actor = audit.SYSTEM,
    **options: object,
) -> Site:
    """Create a site. ``plate_region`` is shorthand for a one-region ``plate_regions``; without
    ``visitors`` the policy is the default of the site's ``kind`` (residential and private
    sites do not admit unknown vehicles)."""
    check_code(code, "site")
    if session.scalar(select(Site.id).where(Site.code == code)) is not None:
        raise InvalidInput(f"site {code} already exists")
    check_timezone(timezone)
    currency_exponent(currency)
    if plate_region is not None and plate_regions is not None:
        raise InvalidInput("give plate_regions or plate_region, not both")
    regions = check_regions(plate_regions if plate_regions is not None else [plate_region or "us"])
    if "visitor_pass_pricing" in options:
        check_pass_pricing(str(options["visitor_pass_pricing"]))
    site = Site(
        code=code,
        name=name,
        timezone=timezone,
        currency=currency,
        plate_regions=regions,
        capacity=capacity,
        kind=kind,
        visitors=check_visitor_policy(kind, visitors),
        **{"kpi_targets": {}, **options},
    )
    session.add(site)
    session.flush()
    audit.append(session, "site.created", "site", site.id, {"code": code, "timezone": timezone,
                 "currency": currency, "plate_regions": regions, "kind": site.kind, "visitors": site.visitors},
                 actor=actor, site_id=site.id)
    return site


# What can change on an existing site (its code is its identity).
EDITABLE_SITE_FIELDS = ("name", "timezone", "currency", "capacity", "kind", "visitors", "visitor_pass_pricing",
                        "plate_regions", "lapsed_credential_days", "free_format_min_confidence", "min_confidence",
                        "duplicate_window_s", "max_stay_hours", "dispute_review_days", "anti_passback",
                        "barrier_mode", "issues_tickets", "kpi_targets")
_FRACTIONS = ("free_format_min_confidence", "min_confidence")
_COUNTS = {"capacity": 0, "lapsed_credential_days": 0, "duplicate_window_s": 0, "max_stay_hours": 1,
           "dispute_review_days": 0}
_CHOICES = {"anti_passback": ("deny", "attendant", "off"), "barrier_mode": ("push", "pull", "both")}


def update_site(session: Session, site: Site, *, actor: audit.Actor = audit.SYSTEM,
                **changes: Any) -> dict[str, list[Any]]:
    """Change a site's settings; returns ``{field: [old, new]}`` of what differed (audited as one event).

    The currency cannot change once the site has tariff versions: its prices are in it."""
    from .models import TariffVersion

    unknown = sorted(set(changes) - set(EDITABLE_SITE_FIELDS))
    if unknown:
        raise InvalidInput(f"not a site setting: {', '.join(unknown)}")
    if "name" in changes and (not isinstance(changes["name"], str) or not changes["name"].strip()):
        raise InvalidInput("a site needs a name")
    if "timezone" in changes:
        check_timezone(changes["timezone"])
    if "currency" in changes and changes["currency"] != site.currency:
        currency_exponent(changes["currency"])
        if session.scalar(select(TariffVersion.id).where(TariffVersion.site_id == site.id).limit(1)) is not None:
            raise InvalidInput(f"site {site.code} has prices in {site.currency}; its currency cannot change")
    if "plate_regions" in changes:
        changes["plate_regions"] = check_regions(changes["plate_regions"])
    if "kind" in changes or "visitors" in changes:
        kind = changes.get("kind", site.kind)
        changes["visitors"] = check_visitor_policy(kind, changes.get("visitors", site.visitors))
    if "visitor_pass_pricing" in changes:
        check_pass_pricing(changes["visitor_pass_pricing"])
    for name, options in _CHOICES.items():
        if name in changes and changes[name] not in options:
            raise InvalidInput(f"{name} must be one of {', '.join(options)}; got {changes[name]!r}")
    for name in _FRACTIONS:
        if name in changes and not (isinstance(changes[name], (int, float)) and 0 <= changes[name] <= 1):
            raise InvalidInput(f"{name} must be a number from 0 to 1")
    for name, low in _COUNTS.items():
        value = changes.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise InvalidInput(f"{name} must be a whole number of at least {low}")
    return set_audited(session, site, changes, event="site.updated", entity="site", site_id=site.id, actor=actor)


def set_audited(session: Session, obj: Any, wanted: Mapping[str, Any], *, event: str, entity: str, site_id: int,
                actor: Any) -> dict[str, list[Any]]:
    """Set the fields of ``obj`` that differ from ``wanted``; returns ``{field: [old, new]}``, audited as one event
    (nothing is written when nothing differs: an idempotent apply leaves no trace)."""
    diffs: dict[str, list[Any]] = {}
    for name, value in wanted.items():
        old = getattr(obj, name)
        if old != value:
            diffs[name] = [old, value]
            setattr(obj, name, value)
    if diffs:
        session.flush()
        audit.append(session, event, entity, obj.id, {"changes": diffs}, actor=actor, site_id=site_id)
    return diffs


def create_zone(session: Session, site: Site, code: str, name: str, capacity: Optional[int] = None, *,
                actor: audit.Actor = audit.SYSTEM) -> Zone:
    check_code(code, "zone")
    if session.scalar(select(Zone.id).where(Zone.site_id == site.id, Zone.code == code)) is not None:
        raise InvalidInput(f"site {site.code} already has a zone {code!r}")
    if capacity is not None and capacity < 0:
        raise InvalidInput("a zone's capacity cannot be negative")
    zone = Zone(site_id=site.id, code=code, name=name, capacity=capacity)
    session.add(zone)
    session.flush()
    audit.append(session, "zone.created", "zone", zone.id, {"code": code, "capacity": capacity},
                 actor=actor, site_id=site.id)
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
    enabled: bool = True,
    actor: audit.Actor = audit.SYSTEM,
) -> Lane:
    check_code(code, "lane")
    if direction not in ("entry", "exit"):
        raise InvalidInput("lane direction must be 'entry' or 'exit'")
    if session.scalar(select(Lane.id).where(Lane.code == code)) is not None:
        raise InvalidInput(f"lane code {code!r} is already used (lane codes are unique across all sites)")
    if zone is not None and zone.site_id != site.id:
        raise InvalidInput(f"zone {zone.code!r} belongs to another site")
    lane = Lane(
        site_id=site.id,
        zone_id=zone.id if zone else None,
        code=code,
        name=name,
        direction=direction,
        driver=driver,
        driver_config=driver_config or {},
        enabled=enabled,
    )
    session.add(lane)
    session.flush()
    audit.append(session, "lane.created", "lane", lane.id,
                 {"code": code, "direction": direction, "zone": zone.code if zone else None, "driver": driver,
                  "enabled": enabled}, actor=actor, site_id=site.id)
    return lane


def update_lane(session: Session, lane: Lane, *, name: str, direction: str, zone: Optional[Zone], driver: str,
                driver_config: dict, actor: audit.Actor = audit.SYSTEM) -> dict[str, list[Any]]:
    """Change a lane's name, direction, zone or barrier driver; returns ``{field: [old, new]}``
    (the zone by its code), audited as one ``lane.updated`` event. Its code is its identity."""
    from ..barrier.drivers import make_driver

    if direction not in ("entry", "exit"):
        raise InvalidInput("lane direction must be 'entry' or 'exit'")
    if not name or not name.strip():
        raise InvalidInput("a lane needs a name")
    if zone is not None and zone.site_id != lane.site_id:
        raise InvalidInput(f"zone {zone.code!r} belongs to another site")
    try:
        make_driver(driver, driver_config)
    except ValueError as exc:
        raise InvalidInput(f"barrier driver: {exc}") from None
    old_zone = lane.zone.code if lane.zone_id is not None and lane.zone is not None else None
    wanted = {"name": name, "direction": direction, "driver": driver, "driver_config": dict(driver_config)}
    diffs: dict[str, list[Any]] = {k: [getattr(lane, k), v] for k, v in wanted.items() if getattr(lane, k) != v}
    new_zone_id = zone.id if zone is not None else None
    if lane.zone_id != new_zone_id:
        diffs["zone"] = [old_zone, zone.code if zone is not None else None]
        lane.zone_id = new_zone_id
        lane.zone = zone
    for k, v in wanted.items():
        setattr(lane, k, v)
    if diffs:
        session.flush()
        audit.append(session, "lane.updated", "lane", lane.id, {"code": lane.code, "changes": diffs}, actor=actor,
                     site_id=lane.site_id)
    return diffs


def set_lane_enabled(session: Session, lane: Lane, enabled: bool, *, reason: str = "",
                     actor: audit.Actor = audit.SYSTEM) -> bool:
    """Take a lane out of service (its events are refused, fail closed) or back; False if already so."""
    if lane.enabled == enabled:
        return False
    lane.enabled = enabled
    session.flush()
    audit.append(session, "lane.enabled" if enabled else "lane.disabled", "lane", lane.id,
                 {"code": lane.code, "reason": reason}, actor=actor, site_id=lane.site_id)
    return True


def get_zone(session: Session, site: Site, code: str) -> Zone:
    zone = session.scalar(select(Zone).where(Zone.site_id == site.id, Zone.code == code))
    if zone is None:
        raise NotFound(f"site {site.code} has no zone {code!r}")
    return zone


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
                  lane: Optional[Lane] = None, kind: str = "lane_controller",
                  actor: audit.Actor = audit.SYSTEM) -> IssuedKey:
    """Register a controller or pay station (``kind``) and return its key; only the key's hash is kept.

    ``lane``: bind the key to that lane (it is refused on every other lane; a pay station
    bound to an exit lane is that lane's payment terminal)."""
    if kind not in DEVICE_KINDS:
        raise InvalidInput(f"device kind must be one of {', '.join(DEVICE_KINDS)}; got {kind!r}")
    key = key or f"pl_{secrets.token_hex(KEY_PREFIX_LEN // 2)}_{secrets.token_urlsafe(32)}"
    prefix = key_prefix(key)
    if prefix is None:
        raise InvalidInput("malformed API key")
    _check_bindable(site, lane)
    device = Device(site_id=site.id, name=name, kind=kind, key_prefix=prefix, key_hash=hash_key(key),
                    lane_id=lane.id if lane is not None else None)
    session.add(device)
    session.flush()
    audit.append(session, "device.created", "device", device.id,
                 {"name": name, "kind": kind, "key_prefix": prefix, "lane": lane.code if lane is not None else None},
                 actor=actor, site_id=site.id)
    return IssuedKey(device, key)


def _check_bindable(site: Site, lane: Optional[Lane]) -> None:
    if lane is not None and lane.site_id != site.id:
        raise InvalidInput(f"lane {lane.code!r} belongs to another site")


def bind_device(session: Session, device: Device, lane: Optional[Lane], *,
                actor: audit.Actor = audit.SYSTEM) -> bool:
    """Bind ``device``'s key to ``lane`` (None: every lane of its site); False if nothing changed."""
    new_id = lane.id if lane is not None else None
    if device.lane_id == new_id:
        return False
    _check_bindable(device.site, lane)
    device.lane_id = new_id
    session.flush()
    audit.append(session, "device.bound", "device", device.id,
                 {"lane": lane.code if lane is not None else None}, actor=actor, site_id=device.site_id)
    return True


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
