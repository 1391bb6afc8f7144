"""The site file's schema: parsed and checked whole, before anything touches a database.

A site file describes one site: its settings, zones, lanes, devices and default tariff::

    version: 1
    site: {code: DT, name: Downtown Garage, timezone: America/New_York, currency: USD, ...}
    zones:   [{code: L1, name: Level 1, capacity: 200}]
    lanes:   [{code: DT-IN-1, name: Main St entry, direction: entry, zone: L1, driver: simulated}]
    devices: [{name: Lane controller 1, lane: DT-IN-1}]     # keys are never in the file
    tariff:  {code: standard, name: Standard 2026, effective_from: "2026-01-01T00:00:00Z",
              rules: {...}}                                   # billing/tariff_model.py's rules

Every problem is collected (not just the first) and named as ``file:line: key: what is
wrong``. Unknown keys are refused, so a misspelt setting is never silently ignored. A
setting left out takes its default: the file is the whole truth about what it lists.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping, Optional, Sequence

from ..billing.tariff_model import InvalidTariff, Tariff, TariffError
from ..records.errors import InvalidInput
from ..records.models import (DEFAULT_VISITORS, DEVICE_KINDS, LANE_DIRECTIONS, SITE_KINDS, VISITOR_PASS_PRICING,
                              VISITOR_POLICIES)
from ..records.sites import CODE
from . import document
from .document import Document, DocumentError, Path_

FORMAT_VERSION = 1
DRIVERS = ("simulated", "http_relay")


# --- problems ----------------------------------------------------------------------------------

def key_text(path: Path_) -> str:
    """``("lanes", 2, "code")`` -> ``lanes[2].code``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


class SiteFileError(InvalidInput):
    """The site file is wrong; ``problems`` lists every problem found, each with file, line and key."""

    code = "invalid_site_file"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Source:
    """Where a parsed site file came from, to point service-level errors at its lines."""

    filename: str
    doc: Document = field(repr=False, compare=False)

    def problem(self, path: Path_, message: str) -> Problem:
        return Problem(self.filename, self.doc.line(path), key_text(path), message)


# --- the parsed file ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZoneSpec:
    code: str
    name: str
    capacity: Optional[int]
    path: Path_ = field(compare=False)


@dataclass(frozen=True)
class LaneSpec:
    code: str
    name: str
    direction: str
    zone: Optional[str]
    driver: str
    driver_config: Mapping[str, Any]
    enabled: bool
    path: Path_ = field(compare=False)


@dataclass(frozen=True)
class DeviceSpec:
    """A lane controller or a pay station; a pay station bound to an exit lane is its payment terminal."""

    name: str
    kind: str
    lane: Optional[str]
    path: Path_ = field(compare=False)


@dataclass(frozen=True)
class TariffSpec:
    code: str
    name: str
    effective_from: Optional[datetime]
    rules: Mapping[str, Any]  # the engine's normalised rules (Tariff.to_dict())
    path: Path_ = field(compare=False)


@dataclass(frozen=True)
class HolidaySpec:
    """A local date billed with the tariff's ``holiday`` schedule."""

    day: date
    name: str
    path: Path_ = field(compare=False)


@dataclass(frozen=True)
class SiteFile:
    site: Mapping[str, Any]  # every field of SITE_FIELDS, defaults filled in
    zones: tuple[ZoneSpec, ...]
    lanes: tuple[LaneSpec, ...]
    devices: tuple[DeviceSpec, ...]
    tariff: Optional[TariffSpec]
    holidays: tuple[HolidaySpec, ...]
    source: Source = field(compare=False)

    @property
    def code(self) -> str:
        return self.site["code"]


# --- value checks (raise ValueError with the reason) ----------------------------------------------

Check = Callable[[Any], Any]


def _text(max_len: int, pattern: Optional[re.Pattern[str]] = None) -> Check:
    def check(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"expected text, got {_shown(v)}")
        if len(v) > max_len:
            raise ValueError(f"at most {max_len} characters, got {len(v)}")
        if pattern is not None and not pattern.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid code: use 1-32 letters, digits, '.', '_' or '-'")
        return v
    return check


def _int(minimum: int = 0, *, optional: bool = False) -> Check:
    def check(v: Any) -> Optional[int]:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected a whole number, got {_shown(v)}")
        if v < minimum:
            raise ValueError(f"must be at least {minimum}, got {v}")
        return v
    return check


def _fraction(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise ValueError(f"expected a number from 0 to 1, got {_shown(v)}")
    return float(v)


def _choice(options: Sequence[str], *, optional: bool = False) -> Check:
    def check(v: Any) -> Optional[str]:
        if v is None and optional:
            return None
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}; got {_shown(v)}")
        return v
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_shown(v)}")
    return v


def _timezone(v: Any) -> str:
    from ..records.sites import check_timezone

    if not isinstance(v, str):
        raise ValueError(f"expected an IANA time zone such as 'Europe/Paris', got {_shown(v)}")
    try:
        check_timezone(v)
    except InvalidInput as exc:
        raise ValueError(f"{exc.message} (expected an IANA name such as 'Europe/Paris')") from None
    return v


def _currency(v: Any) -> str:
    from ..billing.tariff_model import currency_exponent

    try:
        currency_exponent(v)
    except TariffError as exc:
        raise ValueError(str(exc).removeprefix("currency: ")) from None
    return v


def _regions(v: Any) -> list[str]:
    from ..records.sites import check_regions

    if not isinstance(v, list) or not all(isinstance(r, str) for r in v):
        raise ValueError(f"expected a list of plate regions such as [us], got {_shown(v)}")
    try:
        return check_regions(v)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _kpi_targets(v: Any) -> dict[str, float]:
    from ..records.kpis import TARGETS

    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping of target names to numbers, got {_shown(v)}")
    unknown = sorted(set(v) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown KPI target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    for k, x in v.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ValueError(f"{k}: expected a number, got {_shown(x)}")
    return dict(v)


def _day(v: Any) -> date:
    if isinstance(v, str):
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date such as 2026-12-25, got {_shown(v)}")


def _mapping(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping, got {_shown(v)}")
    return dict(v)


def _shown(v: Any) -> str:
    return "nothing" if v is None else f"{type(v).__name__} {v!r}"[:80]


_MISSING = object()
_DEFAULT_VISITORS = object()  # the default of the site's kind

# The site's settings, in the file's order: check, default (_MISSING: required).
SITE_FIELDS: dict[str, tuple[Check, Any]] = {
    "code": (_text(32, CODE), _MISSING),
    "name": (_text(120), _MISSING),
    "timezone": (_timezone, _MISSING),
    "currency": (_currency, _MISSING),
    "capacity": (_int(0, optional=True), None),
    "kind": (_choice(SITE_KINDS), "public"),
    "visitors": (_choice(VISITOR_POLICIES, optional=True), _DEFAULT_VISITORS),
    # a visitor pass's window parks free, at the tariff's "visitor" rate, or at the normal tariff
    "visitor_pass_pricing": (_choice(VISITOR_PASS_PRICING), "tariff"),
    "plate_regions": (_regions, ["us"]),
    "lapsed_credential_days": (_int(0), 90),
    "free_format_min_confidence": (_fraction, 0.8),
    "min_confidence": (_fraction, 0.6),
    "duplicate_window_s": (_int(0), 30),
    "max_stay_hours": (_int(1), 72),
    "dispute_review_days": (_int(0), 14),
    "anti_passback": (_choice(("deny", "attendant", "off")), "deny"),
    "barrier_mode": (_choice(("push", "pull", "both")), "both"),
    "issues_tickets": (_bool, True),
    "kpi_targets": (_kpi_targets, {}),
}
ZONE_FIELDS: dict[str, tuple[Check, Any]] = {
    "code": (_text(32, CODE), _MISSING),
    "name": (_text(120), None),  # default: the code
    "capacity": (_int(0, optional=True), None),
}
LANE_FIELDS: dict[str, tuple[Check, Any]] = {
    "code": (_text(32, CODE), _MISSING),
    "name": (_text(120), None),
    "direction": (_choice(LANE_DIRECTIONS), _MISSING),
    "zone": (_text(32), None),
    "driver": (_choice(DRIVERS), "simulated"),
    "driver_config": (_mapping, {}),
    "enabled": (_bool, True),
}
DEVICE_FIELDS: dict[str, tuple[Check, Any]] = {
    "name": (_text(120), _MISSING),
    "kind": (_choice(DEVICE_KINDS), "lane_controller"),
    "lane": (_text(32), None),
}
TARIFF_KEYS = ("code", "name", "effective_from", "rules")
HOLIDAY_FIELDS: dict[str, tuple[Check, Any]] = {
    "day": (_day, _MISSING),
    "name": (_text(120), ""),
}
TOP_KEYS = ("version", "site", "zones", "lanes", "devices", "tariff", "holidays")


# --- parsing -----------------------------------------------------------------------------------

class _Reader:
    """Walks the document, collecting every problem with its line."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(self.source.problem(path, message))

    def mapping(self, value: Any, path: Path_, allowed: Sequence[str], what: str) -> Optional[dict]:
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping ({what}), got {_shown(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.problem(path + (key,), f"unknown key {key!r} in {what}; allowed: {', '.join(allowed)}")
        return value

    def fields(self, value: Any, path: Path_, spec: Mapping[str, tuple[Check, Any]], what: str) -> Optional[dict]:
        data = self.mapping(value, path, tuple(spec), what)
        if data is None:
            return None
        out: dict[str, Any] = {}
        ok = True
        for name, (check, default) in spec.items():
            if name not in data or (data[name] is None and default is not _MISSING):  # null: left out
                if default is _MISSING:
                    self.problem(path, f"{what} needs {name!r}")
                    ok = False
                out[name] = None if default is _MISSING else default
                continue
            try:
                out[name] = check(data[name])
            except ValueError as exc:
                self.problem(path + (name,), str(exc))
                ok = False
        return out if ok else None

    def items(self, value: Any, path: Path_, what: str) -> list[tuple[Path_, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"expected a list of {what}, got {_shown(value)}")
            return []
        return [(path + (i,), item) for i, item in enumerate(value)]

    def unique(self, specs: Sequence[Any], attr: str, what: str) -> None:
        first: dict[str, Any] = {}
        for spec in specs:
            key = getattr(spec, attr)
            if key in first:
                line = self.source.doc.line(first[key].path + (attr,))
                self.problem(spec.path + (attr,), f"{what} {str(key)!r} is used twice (first on line {line})")
            else:
                first[key] = spec


def parse(text: str, filename: str = "<site file>") -> SiteFile:
    """Parse and check a site file; raises :class:`SiteFileError` listing every problem."""
    try:
        doc = document.load(text)
    except DocumentError as exc:
        raise SiteFileError([Problem(filename, exc.line, "(file)", exc.message)]) from None
    r = _Reader(Source(filename, doc))
    top = r.mapping(doc.data, (), TOP_KEYS, "the site file")
    if top is None:
        raise SiteFileError(r.problems)
    version = top.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        r.problem(("version",), f"this parkinglot reads site file version {FORMAT_VERSION}, got {version!r}")
    if "site" not in top:
        r.problem((), "the site file needs a 'site' section")
    site = r.fields(top.get("site", {}), ("site",), SITE_FIELDS, "the site") if "site" in top else None
    if site is not None and site["visitors"] in (None, _DEFAULT_VISITORS):
        site["visitors"] = DEFAULT_VISITORS[site["kind"]]

    zones = []
    for path, item in r.items(top.get("zones"), ("zones",), "zones"):
        z = r.fields(item, path, ZONE_FIELDS, "a zone")
        if z is not None:
            zones.append(ZoneSpec(z["code"], z["name"] or z["code"], z["capacity"], path))
    r.unique(zones, "code", "zone code")
    zone_codes = {z.code for z in zones}

    lanes = []
    for path, item in r.items(top.get("lanes"), ("lanes",), "lanes"):
        ln = r.fields(item, path, LANE_FIELDS, "a lane")
        if ln is None:
            continue
        if ln["zone"] is not None and ln["zone"] not in zone_codes:
            r.problem(path + ("zone",), f"unknown zone {ln['zone']!r}; the file's zones: "
                                        f"{', '.join(sorted(zone_codes)) or 'none'}")
        _check_driver(r, path, ln["driver"], ln["driver_config"])
        lanes.append(LaneSpec(ln["code"], ln["name"] or ln["code"], ln["direction"], ln["zone"], ln["driver"],
                              ln["driver_config"], ln["enabled"], path))
    r.unique(lanes, "code", "lane code")
    lane_codes = {ln.code for ln in lanes}

    devices = []
    for path, item in r.items(top.get("devices"), ("devices",), "devices"):
        if isinstance(item, dict):
            for secret in ("key", "api_key", "key_hash"):
                if secret in item:
                    r.problem(path + (secret,), "a site file holds no device keys: 'site apply' prints a new "
                                                "device's key once (or use 'parkinglot devices add')")
            item = {k: v for k, v in item.items() if k not in ("key", "api_key", "key_hash")}
        d = r.fields(item, path, DEVICE_FIELDS, "a device")
        if d is None:
            continue
        if d["lane"] is not None and d["lane"] not in lane_codes:
            r.problem(path + ("lane",), f"unknown lane {d['lane']!r}; the file's lanes: "
                                        f"{', '.join(sorted(lane_codes)) or 'none'}")
        devices.append(DeviceSpec(d["name"], d["kind"], d["lane"], path))
    r.unique(devices, "name", "device name")

    tariff = None
    if top.get("tariff") is not None:
        raw_site = top.get("site")
        currency = site["currency"] if site else (raw_site.get("currency") if isinstance(raw_site, dict) else None)
        try:
            currency = _currency(currency)
        except ValueError:  # already reported at site.currency; the rules cannot be checked without it
            currency = None
        tariff = _tariff(r, top["tariff"], currency)
    if site is not None and tariff is not None and site["visitor_pass_pricing"] == "visitor_rate" \
            and "visitor" not in tariff.rules["rates"]:
        r.problem(("site", "visitor_pass_pricing"), "visitor_rate prices visitor passes with the tariff's rate "
                                                    "named 'visitor', and tariff.rules.rates has none")
    holidays = []
    for path, item in r.items(top.get("holidays"), ("holidays",), "holidays"):
        h = r.fields(item, path, HOLIDAY_FIELDS, "a holiday")
        if h is not None:
            holidays.append(HolidaySpec(h["day"], h["name"], path))
    r.unique(holidays, "day", "holiday")
    if r.problems:
        raise SiteFileError(r.problems)
    assert site is not None
    return SiteFile(site, tuple(zones), tuple(lanes), tuple(devices), tariff,
                    tuple(sorted(holidays, key=lambda h: h.day)), r.source)


def _check_driver(r: _Reader, path: Path_, driver: str, config: Mapping[str, Any]) -> None:
    from ..barrier.drivers import make_driver

    try:
        make_driver(driver, config)
    except (ValueError, TypeError) as exc:
        r.problem(path + ("driver_config",), f"not a valid {driver} configuration: {exc}")


def _tariff(r: _Reader, value: Any, currency: Optional[str]) -> Optional[TariffSpec]:
    path: Path_ = ("tariff",)
    data = r.mapping(value, path, TARIFF_KEYS, "the tariff")
    if data is None:
        return None
    code = data.get("code", "standard")
    ok = True
    try:
        _text(32, CODE)(code)
    except ValueError as exc:
        r.problem(path + ("code",), str(exc))
        ok = False
    name = data.get("name", code)
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        r.problem(path + ("name",), f"expected text of at most 120 characters, got {_shown(name)}")
        ok = False
    effective = None
    if data.get("effective_from") is not None:
        try:
            effective = parse_instant(data["effective_from"])
        except ValueError as exc:
            r.problem(path + ("effective_from",), str(exc))
            ok = False
    if "rules" not in data:
        r.problem(path, "the tariff needs 'rules' (see the tariff rules in docs/site-file.md)")
        return None
    rules = data["rules"]
    if not isinstance(rules, dict):
        r.problem(path + ("rules",), f"expected a mapping of tariff rules, got {_shown(rules)}")
        return None
    rules = dict(rules)
    if currency is None:
        return None
    if rules.setdefault("currency", currency) != currency:
        r.problem(path + ("rules", "currency"),
                  f"the tariff's currency {rules['currency']!r} differs from the site's {currency!r}")
        return None
    try:
        normalised = Tariff.from_dict(rules).to_dict()
    except InvalidTariff as exc:
        engine_path = _engine_path(exc.path)
        r.problems.append(Problem(r.source.filename, r.source.doc.line(path + ("rules",) + engine_path),
                                  key_text(path + ("rules",)) + _engine_suffix(exc.path), exc.reason))
        return None
    except TariffError as exc:
        r.problem(path + ("rules",), str(exc))
        return None
    return TariffSpec(code, name, effective, normalised, path) if ok else None


_STEP = re.compile(r"\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]|\.?([A-Za-z_][A-Za-z0-9_]*)")


def _engine_path(text: str) -> Path_:
    """The tariff engine's error path (``rates['day'].bands[1]``) as a document path."""
    out: list[Any] = []
    pos = 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if not m:
            break
        if m.group(1) is not None:
            out.append(int(m.group(1)))
        elif m.group(2) is not None:
            out.append(ast.literal_eval(m.group(2)))
        else:
            out.append(m.group(3))
        pos = m.end()
    return tuple(out)


def _engine_suffix(text: str) -> str:
    return "" if not text else (text if text.startswith("[") else "." + text)


def parse_instant(value: Any) -> datetime:
    """An ISO 8601 instant with a UTC offset (``2026-03-01T00:00:00Z``), as aware UTC."""
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 instant: {value!r} (write e.g. 2026-03-01T00:00:00Z)") from None
    else:
        raise ValueError(f"expected an ISO 8601 instant such as 2026-03-01T00:00:00Z, got {_shown(value)}")
    if at.tzinfo is None:
        raise ValueError(f"{value!r} needs a UTC offset (e.g. 2026-03-01T00:00:00Z or +01:00)")
    return at.astimezone(timezone.utc)


# --- writing --------------------------------------------------------------------------------------

def to_data(sf: SiteFile) -> dict[str, Any]:
    """The file's content as plain data, in the order a person reads it (for ``site export``)."""
    out: dict[str, Any] = {"version": FORMAT_VERSION, "site": dict(sf.site)}
    out["zones"] = [{"code": z.code, "name": z.name, "capacity": z.capacity} for z in sf.zones]
    out["lanes"] = []
    for ln in sf.lanes:
        lane: dict[str, Any] = {"code": ln.code, "name": ln.name, "direction": ln.direction}
        if ln.zone:
            lane["zone"] = ln.zone
        lane["driver"] = ln.driver
        if ln.driver_config:
            lane["driver_config"] = dict(ln.driver_config)
        if not ln.enabled:
            lane["enabled"] = False
        out["lanes"].append(lane)
    out["devices"] = [{"name": d.name, **({"kind": d.kind} if d.kind != "lane_controller" else {}),
                       **({"lane": d.lane} if d.lane else {})} for d in sf.devices]
    if sf.tariff is not None:
        rules = {k: v for k, v in sf.tariff.rules.items() if k != "schema"
                 and not (k == "currency" and v == sf.site["currency"])}
        tariff: dict[str, Any] = {"code": sf.tariff.code, "name": sf.tariff.name}
        if sf.tariff.effective_from is not None:
            tariff["effective_from"] = sf.tariff.effective_from.isoformat().replace("+00:00", "Z")
        tariff["rules"] = rules
        out["tariff"] = tariff
    if sf.holidays:
        out["holidays"] = [{"day": h.day.isoformat(), **({"name": h.name} if h.name else {})} for h in sf.holidays]
    return out


HEADER = """\
# parkinglot site file (version 1): `parkinglot site apply FILE` creates or updates the site.
# Settings left out take their defaults. Device keys are never written here: applying the
# file prints a new device's key once. A changed tariff becomes a new tariff version from
# tariff.effective_from (stays already inside keep the version they entered under).
"""


def dump(sf: SiteFile) -> str:
    """The site file's YAML text (``parse(dump(sf))`` gives an equal SiteFile)."""
    return HEADER + document.dump(to_data(sf))
