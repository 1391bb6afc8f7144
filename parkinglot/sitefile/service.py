"""Apply a parsed site file to the database, and write a site back out as one.

``apply`` compares the file with what is stored and changes only the difference, so a
second apply of the same file changes nothing. Everything it checks against the
database (a lane code another site uses, a currency change under existing prices, a
tariff change dated in the past) is checked before the first write, and the caller's
transaction holds the whole apply: a file is applied entirely or not at all. Every
change goes to the audit trail under the caller's actor.

Things in the database but not in the file are left alone and reported, unless
``prune``: then lanes are disabled and device keys revoked (their records stay:
reads and decisions are evidence, so nothing is deleted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..billing import tariffs
from ..billing.tariff_model import Tariff
from ..records import audit, sites
from ..records import wallclock
from ..records.models import Device, Lane, ParkingSession, Site, SiteHoliday, TariffVersion, Zone
from ..records.types import utcnow
from .document import Document
from .spec import (DeviceSpec, HolidaySpec, LaneSpec, Problem, SiteFile, SiteFileError, Source, TariffSpec,
                   ZoneSpec)


@dataclass(frozen=True)
class Change:
    """One difference applied: ``lane DT-IN-1: updated (name 'A' -> 'B')``."""

    what: str
    action: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.what}: {self.action}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class IssuedDeviceKey:
    """A device created by the apply; its key exists only here (the database keeps a hash)."""

    device_id: int
    name: str
    lane: Optional[str]
    key: str = field(repr=False)
    kind: str = "lane_controller"


@dataclass(frozen=True)
class Applied:
    site_id: int
    changes: tuple[Change, ...]
    keys: tuple[IssuedDeviceKey, ...]
    notes: tuple[str, ...]  # stored things the file does not mention, left alone


def apply(session: Session, sf: SiteFile, *, actor: audit.Actor = audit.SYSTEM, now: Optional[datetime] = None,
          prune: bool = False) -> Applied:
    """Make the stored site match ``sf``; raises :class:`SiteFileError` before writing anything."""
    now = now or utcnow()
    site = session.scalar(select(Site).where(Site.code == sf.code))
    _check(session, sf, site, now)
    run = _Run(session, sf, actor)
    site = run.site(site)
    zones = run.zones(site)
    lanes = run.lanes(site, zones)
    run.devices(site, lanes, prune)
    run.holidays(site, now, prune)
    if sf.tariff is not None:
        run.tariff(site, sf.tariff, now)
    elif site.default_tariff_code:
        run.notes.append(f"tariff {site.default_tariff_code}: not in the file, kept")
    if prune:
        for lane in site.lanes:
            if lane.code not in lanes and sites.set_lane_enabled(session, lane, False, reason="not in the site file",
                                                                 actor=actor):
                run.changes.append(Change(f"lane {lane.code}", "disabled", "not in the site file"))
    else:
        run.notes.extend(f"lane {lane.code}: not in the file, kept (--prune disables it)"
                         for lane in site.lanes if lane.code not in lanes and lane.enabled)
    session.flush()
    return Applied(site.id, tuple(run.changes), tuple(run.keys), tuple(run.notes))


def _check(session: Session, sf: SiteFile, site: Optional[Site], now: datetime) -> None:
    """Everything the database can refuse, found before the first write."""
    src = sf.source
    problems: list[Problem] = []
    codes = [ln.code for ln in sf.lanes]
    if codes:
        taken = session.execute(select(Lane.code, Site.code).join(Site, Site.id == Lane.site_id)
                                .where(Lane.code.in_(codes), Site.code != sf.code)).all()
        owners = dict(taken)
        for ln in sf.lanes:
            if ln.code in owners:
                problems.append(src.problem(ln.path + ("code",), f"lane code {ln.code!r} is already used by site "
                                            f"{owners[ln.code]} (lane codes are unique across all sites)"))
    if site is not None:
        if site.currency != sf.site["currency"] and session.scalar(
                select(func.count()).select_from(TariffVersion).where(TariffVersion.site_id == site.id)):
            problems.append(src.problem(("site", "currency"), f"site {site.code} has prices in {site.currency}; "
                                        "its currency cannot change (set up a new site instead)"))
        names = [d.name for d in sf.devices]
        dup = session.execute(select(Device.name).where(Device.site_id == site.id, Device.revoked_at.is_(None),
                                                        Device.name.in_(names))
                              .group_by(Device.name).having(func.count() > 1)).scalars().all() if names else []
        kinds = dict(session.execute(select(Device.name, Device.kind).where(
            Device.site_id == site.id, Device.revoked_at.is_(None), Device.name.in_(names))).all()) if names else {}
        for d in sf.devices:
            if d.name in dup:
                problems.append(src.problem(d.path + ("name",), f"site {site.code} has several active devices "
                                            f"called {d.name!r}: revoke the extra ones first (devices revoke ID)"))
            elif d.name in kinds and kinds[d.name] != d.kind:
                problems.append(src.problem(d.path + ("kind",), f"device {d.name!r} is a {kinds[d.name]}; a key "
                                            f"keeps its kind: revoke it and add a {d.kind} under another name"))
        if sf.tariff is not None:
            problems.extend(_check_tariff(session, site, sf.tariff, src, now))
        problems.extend(_check_holidays(session, site, sf.holidays, src, now))
    if problems:
        raise SiteFileError(problems)


def _check_tariff(session: Session, site: Site, spec: TariffSpec, src: Source, now: datetime) -> list[Problem]:
    latest = _latest_version(session, site.id, spec.code)
    if latest is None or not _differs(latest, spec):
        return []
    at = spec.effective_from or now
    if at < now:
        return [src.problem(spec.path + ("effective_from",),
                            f"tariff {spec.code} changes, but effective_from {_iso(at)} is in the past: a new "
                            f"version takes effect from now or later (stays already inside keep theirs); set "
                            f"effective_from to when the new prices start, or leave it out for 'now'")]
    return []


def _today(site: Site, now: datetime):
    return now.astimezone(wallclock.zone(site.timezone)).date()


def _check_holidays(session: Session, site: Site, holidays: tuple[HolidaySpec, ...], src: Source,
                    now: datetime) -> list[Problem]:
    """A holiday added before today would re-price stays already billed without it: refused once
    the site has stays (a new site may list last year's holidays)."""
    stored = set(session.scalars(select(SiteHoliday.day).where(SiteHoliday.site_id == site.id)))
    past = [h for h in holidays if h.day < _today(site, now) and h.day not in stored]
    if not past or session.scalar(select(ParkingSession.id).where(ParkingSession.site_id == site.id).limit(1)) is None:
        return []
    return [src.problem(h.path + ("day",), f"holiday {h.day} is in the past: stays were already priced without it, "
                                           "and a stay is re-priced exactly as it was billed") for h in past]


def _latest_version(session: Session, site_id: int, code: str) -> Optional[TariffVersion]:
    return session.scalar(select(TariffVersion).where(TariffVersion.site_id == site_id, TariffVersion.code == code)
                          .order_by(TariffVersion.version.desc()).limit(1))


def _normalised(rules: Any) -> dict[str, Any]:
    return Tariff.from_dict(rules).to_dict()


def _differs(version: TariffVersion, spec: TariffSpec) -> bool:
    return version.name != spec.name or _normalised(version.rules) != dict(spec.rules)


def _shown_diffs(diffs: dict[str, list[Any]]) -> str:
    return ", ".join(f"{k} {o!r} -> {n!r}" for k, (o, n) in diffs.items())


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class _Run:
    """One apply: the writes, in dependency order, and what they changed."""

    def __init__(self, session: Session, sf: SiteFile, actor: audit.Actor) -> None:
        self.s = session
        self.sf = sf
        self.actor = actor
        self.changes: list[Change] = []
        self.keys: list[IssuedDeviceKey] = []
        self.notes: list[str] = []

    def _update(self, obj: Any, wanted: dict[str, Any], what: str, event: str, entity: str, site_id: int) -> None:
        """Set the fields that differ, audited as one event."""
        diffs = sites.set_audited(self.s, obj, wanted, event=event, entity=entity, site_id=site_id, actor=self.actor)
        if diffs:
            self.changes.append(Change(what, "updated", _shown_diffs(diffs)))

    def site(self, site: Optional[Site]) -> Site:
        wanted = dict(self.sf.site)
        code = wanted.pop("code")
        if site is None:
            site = sites.create_site(self.s, code=code, actor=self.actor, **wanted)
            self.changes.append(Change(f"site {code}", "created", f"{site.name}, {site.timezone}, {site.currency}"))
            return site
        diffs = sites.update_site(self.s, site, actor=self.actor, **wanted)
        if diffs:
            self.changes.append(Change(f"site {code}", "updated", _shown_diffs(diffs)))
        return site

    def zones(self, site: Site) -> dict[str, Zone]:
        stored = {z.code: z for z in self.s.scalars(select(Zone).where(Zone.site_id == site.id))}
        for spec in self.sf.zones:
            zone = stored.get(spec.code)
            if zone is None:
                stored[spec.code] = sites.create_zone(self.s, site, spec.code, spec.name, spec.capacity,
                                                      actor=self.actor)
                self.changes.append(Change(f"zone {spec.code}", "created"))
            else:
                self._update(zone, {"name": spec.name, "capacity": spec.capacity}, f"zone {spec.code}",
                             "zone.updated", "zone", site.id)
        self.notes.extend(f"zone {code}: not in the file, kept" for code in sorted(stored)
                          if code not in {z.code for z in self.sf.zones})
        return stored

    def lanes(self, site: Site, zones: dict[str, Zone]) -> dict[str, Lane]:
        stored = {ln.code: ln for ln in self.s.scalars(select(Lane).where(Lane.site_id == site.id))}
        out: dict[str, Lane] = {}
        for spec in self.sf.lanes:
            zone = zones[spec.zone] if spec.zone else None
            lane = stored.get(spec.code)
            if lane is None:
                lane = sites.create_lane(self.s, site, code=spec.code, name=spec.name, direction=spec.direction,
                                         zone=zone, driver=spec.driver, driver_config=dict(spec.driver_config),
                                         enabled=spec.enabled, actor=self.actor)
                self.changes.append(Change(f"lane {spec.code}", "created",
                                           spec.direction + ("" if spec.enabled else ", disabled")))
            else:
                diffs = sites.update_lane(self.s, lane, name=spec.name, direction=spec.direction, zone=zone,
                                          driver=spec.driver, driver_config=dict(spec.driver_config), actor=self.actor)
                if diffs:
                    self.changes.append(Change(f"lane {spec.code}", "updated", _shown_diffs(diffs)))
                if sites.set_lane_enabled(self.s, lane, spec.enabled, reason="site file", actor=self.actor):
                    self.changes.append(Change(f"lane {spec.code}", "enabled" if spec.enabled else "disabled"))
            out[spec.code] = lane
        self.s.expire(site, ["lanes"])
        return out

    def devices(self, site: Site, lanes: dict[str, Lane], prune: bool) -> None:
        active = list(self.s.scalars(select(Device).where(Device.site_id == site.id, Device.revoked_at.is_(None))
                                     .order_by(Device.id)))
        by_name = {d.name: d for d in active}
        for spec in self.sf.devices:
            lane = lanes[spec.lane] if spec.lane else None
            device = by_name.get(spec.name)
            if device is None:
                issued = sites.create_device(self.s, site, spec.name, lane=lane, kind=spec.kind, actor=self.actor)
                self.keys.append(IssuedDeviceKey(issued.device.id, spec.name, spec.lane, issued.key, spec.kind))
                self.changes.append(Change(f"device {spec.name!r}", "created", f"{spec.kind}, " + (
                    f"bound to lane {spec.lane}" if spec.lane else "any lane of the site")))
            elif sites.bind_device(self.s, device, lane, actor=self.actor):
                self.changes.append(Change(f"device {spec.name!r}", "rebound",
                                           f"to lane {spec.lane}" if spec.lane else "to any lane of the site"))
        named = {d.name for d in self.sf.devices}
        for device in active:
            if device.name in named:
                continue
            if prune:
                sites.revoke_device(self.s, device, actor=self.actor)
                self.changes.append(Change(f"device {device.name!r}", "revoked", "not in the site file"))
            else:
                self.notes.append(f"device {device.name!r}: not in the file, kept (--prune revokes its key)")

    def holidays(self, site: Site, now: datetime, prune: bool) -> None:
        stored = {h.day: h for h in self.s.scalars(select(SiteHoliday).where(SiteHoliday.site_id == site.id))}
        wanted = {h.day: h for h in self.sf.holidays}
        for day, spec in wanted.items():
            row = stored.get(day)
            if row is None:
                self.s.add(SiteHoliday(site_id=site.id, day=day, name=spec.name))
                self._holiday_event(site, "site.holiday_added", day, spec.name, "added")
            elif row.name != spec.name:
                row.name = spec.name
                self._holiday_event(site, "site.holiday_renamed", day, spec.name, "renamed")
        today = _today(site, now)
        for day, row in sorted(stored.items()):
            if day in wanted:
                continue
            if prune and day >= today:
                self.s.delete(row)
                self._holiday_event(site, "site.holiday_removed", day, row.name, "removed")
            else:
                self.notes.append(f"holiday {day}: not in the file, kept"
                                  + (" (--prune removes holidays from today on)" if day >= today else
                                     " (past holidays priced stays)"))

    def _holiday_event(self, site: Site, action: str, day: Any, name: str, what: str) -> None:
        self.s.flush()
        audit.append(self.s, action, "site", site.id, {"day": day.isoformat(), "name": name}, actor=self.actor,
                     site_id=site.id)
        self.changes.append(Change(f"holiday {day}", what, name))

    def tariff(self, site: Site, spec: TariffSpec, now: datetime) -> None:
        latest = _latest_version(self.s, site.id, spec.code)
        if latest is None or _differs(latest, spec):
            user_id = int(self.actor.id) if self.actor.type == "user" and self.actor.id else None
            version = tariffs.create_version(self.s, site, code=spec.code, name=spec.name, rules=spec.rules,
                                             effective_from=spec.effective_from or now, user_id=user_id,
                                             make_default=True)
            self.changes.append(Change(f"tariff {spec.code}", f"version {version.version} created",
                                       f"effective from {_iso(version.effective_from)}"))
        if site.default_tariff_code != spec.code:
            old = site.default_tariff_code
            site.default_tariff_code = spec.code
            self.s.flush()
            audit.append(self.s, "site.updated", "site", site.id,
                         {"changes": {"default_tariff_code": [old, spec.code]}}, actor=self.actor, site_id=site.id)
            self.changes.append(Change(f"site {site.code}", "default tariff", f"{old} -> {spec.code}"))


def export(session: Session, code: str) -> SiteFile:
    """The stored site as a site file (active devices only; keys are never exported)."""
    from .spec import SITE_FIELDS

    site = sites.get_site(session, code)
    settings = {name: _plain(getattr(site, name)) for name in SITE_FIELDS}
    zones = list(session.scalars(select(Zone).where(Zone.site_id == site.id).order_by(Zone.code)))
    zone_code = {z.id: z.code for z in zones}
    lanes = list(session.scalars(select(Lane).where(Lane.site_id == site.id).order_by(Lane.code)))
    lane_code = {ln.id: ln.code for ln in lanes}
    devices = session.scalars(select(Device).where(Device.site_id == site.id, Device.revoked_at.is_(None))
                              .order_by(Device.name, Device.id))
    tariff = None
    if site.default_tariff_code:
        latest = _latest_version(session, site.id, site.default_tariff_code)
        if latest is not None:
            tariff = TariffSpec(latest.code, latest.name, latest.effective_from, _normalised(latest.rules), ("tariff",))
    return SiteFile(
        settings,
        tuple(ZoneSpec(z.code, z.name, z.capacity, ()) for z in zones),
        tuple(LaneSpec(ln.code, ln.name, ln.direction, zone_code.get(ln.zone_id) if ln.zone_id else None, ln.driver,
                       dict(ln.driver_config or {}), ln.enabled, ()) for ln in lanes),
        tuple(DeviceSpec(d.name, d.kind, lane_code.get(d.lane_id) if d.lane_id else None, ()) for d in devices),
        tariff,
        tuple(HolidaySpec(h.day, h.name, ()) for h in session.scalars(
            select(SiteHoliday).where(SiteHoliday.site_id == site.id).order_by(SiteHoliday.day))),
        Source(f"site {code}", Document(None)),
    )


def _plain(value: Any) -> Any:
    """Stored JSON values as plain YAML-ready data (lists and dicts copied)."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
