"""Tariff rules: frozen dataclasses, validated when they are created, with a JSON round trip.

A tariff version is stored as JSON (``TariffVersion.rules``) and rebuilt with
:meth:`Tariff.from_dict`; ``Tariff.from_dict(t.to_dict()) == t`` always holds. Every
rule is checked at creation, so a tariff that exists is a tariff that can price any
stay: a mistake in a tariff is an error for the person who wrote it, not for the
driver at the barrier.

Money is ``Decimal`` (JSON: a string such as ``"2.50"``; floats are refused), durations
are whole minutes, wall-clock times are ``"HH:MM"`` in the site's local time.

JSON rules (``Tariff.to_dict()``; optional keys may be left out)::

    {"schema": 1,                                   # optional, this engine reads 1
     "currency": "EUR",                             # ISO 4217, must be known
     "rounding": {"mode": "half_up", "increment": "0.05"},   # half_up|half_even|up|down;
                                                    # increment defaults to the minor unit
     "rates": {"day": {"label": "Day", "cap": "5.00",         # cap: per window, optional
                       "bands": [{"from_min": 0, "to_min": 60, "step_min": 30, "price": "2.00"},
                                 {"from_min": 60, "to_min": null, "step_min": 60, "price": "1.50"}]}},
                                                    # step_min null: flat price for the band
     "week": {"mon-fri": [{"from": "00:00", "to": "08:00", "rate": "night"}, ...,
                          {"from": "20:00", "to": "24:00", "rate": "night"}],
              "sat,sun": "weekend",                 # a rate name: that rate all day
              "holiday": "weekend"},                # optional: the site's holiday dates
     "daily_cap": {"amount": "20.00", "day": "calendar", "change_at": "06:00"},
                                                    # or {"amount": ..., "day": "rolling"}
     "max_per_stay": "100.00",
     "free": {"minutes": 15, "mode": "threshold"},  # or "deducted" (first hour free)
     "exit_grace_min": 15, "leniency_min": 5, "reentry_min": 30,
     "lost_ticket": "40.00"}

The integer tables the fee walk needs (prices scaled to integers, steps in
microseconds, one segment list per day type) are computed once, in
``Tariff.__post_init__``, and kept on the frozen instance (``Tariff._c``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

__all__ = [
    "CURRENCY_EXPONENTS", "ROUNDING_MODES", "WEEKDAYS", "HOLIDAY",
    "TariffError", "InvalidTariff", "UnknownCurrency", "InvalidQuoteInput",
    "Band", "Rate", "TimeBand", "DaySchedule", "DailyCap", "FreeTime", "Rounding", "Tariff",
    "currency_exponent", "parse_days", "format_days", "parse_hhmm", "format_hhmm",
]

SCHEMA_VERSION = 1

# ISO 4217 active codes and their minor-unit exponent (number of decimals).
_EXP0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXP3 = "BHD IQD JOD KWD LYD OMR TND"
_EXP4 = "CLF UYW"
_EXP2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD "
    "GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD "
    "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP "
    "PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 2 for c in _EXP2.split()},
    **{c: 0 for c in _EXP0.split()},
    **{c: 3 for c in _EXP3.split()},
    **{c: 4 for c in _EXP4.split()},
}

ROUNDING_MODES = ("half_up", "half_even", "up", "down")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOLIDAY = "holiday"
DAY_MIN = 24 * 60
US_PER_MIN = 60_000_000
INF = 1 << 80  # "never": larger than any instant or amount the engine handles


class TariffError(ValueError):
    """Base class of the tariff engine's errors (a ``ValueError``: the input was wrong)."""


class InvalidTariff(TariffError):
    """The tariff rules are inconsistent; ``path`` names the offending element."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class UnknownCurrency(InvalidTariff):
    """Not an ISO 4217 code this engine knows the minor unit of."""


class InvalidQuoteInput(TariffError):
    """The stay handed to ``quote`` cannot be priced (naive time, exit before entry, ...)."""


def currency_exponent(code: str) -> int:
    """Minor-unit exponent of an ISO 4217 currency (EUR 2, JPY 0, KWD 3)."""
    try:
        return CURRENCY_EXPONENTS[code]
    except (KeyError, TypeError):
        raise UnknownCurrency(f"unknown currency {code!r} (expected an ISO 4217 code such as 'EUR')",
                              "currency") from None


# --- small parsers -------------------------------------------------------------------------

def _money(value: Any, path: str) -> Decimal:
    """Decimal from Decimal / int / str; floats are refused because they cannot hold 0.10 exactly."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidTariff(f"money must be a string or Decimal such as '2.50', not {value!r}", path)
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, (int, str)):
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise InvalidTariff(f"not an amount of money: {value!r}", path) from None
    else:
        raise InvalidTariff(f"money must be a string or Decimal, not {type(value).__name__}", path)
    if not d.is_finite() or d < 0:
        raise InvalidTariff(f"amount must be a finite, non-negative number, got {value!r}", path)
    return d


def _minutes(value: Any, path: str, *, allow_none: bool = False, positive: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTariff(f"expected whole minutes (an integer), got {value!r}", path)
    if value < 0 or (positive and value == 0):
        raise InvalidTariff(f"expected {'a positive' if positive else 'a non-negative'} number of minutes, "
                            f"got {value}", path)
    return value


_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def parse_hhmm(text: Any, path: str = "", *, allow_24: bool = True) -> int:
    """``"08:30"`` -> 510 minutes after local midnight; ``"24:00"`` (the end of a day) -> 1440."""
    m = _HHMM.match(text) if isinstance(text, str) else None
    if not m:
        raise InvalidTariff(f"expected a local time 'HH:MM', got {text!r}", path)
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and (mi or not allow_24)):
        raise InvalidTariff(f"not a time of day: {text!r}", path)
    return h * 60 + mi


def format_hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_days(spec: Any, path: str = "", *, allow_holiday: bool = True) -> frozenset[str]:
    """``"mon-fri"``, ``"sat,sun"``, ``"fri-mon"`` (wraps), ``"holiday"`` -> a set of day names."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidTariff(f"expected days such as 'mon-fri' or 'sat,sun', got {spec!r}", path)
    days: set[str] = set()
    for part in spec.lower().replace(" ", "").split(","):
        if part == HOLIDAY and allow_holiday:
            days.add(HOLIDAY)
        elif "-" in part:
            a, _, b = part.partition("-")
            if a not in WEEKDAYS or b not in WEEKDAYS:
                raise InvalidTariff(f"unknown day range {part!r} in {spec!r}", path)
            i, j = WEEKDAYS.index(a), WEEKDAYS.index(b)
            while True:
                days.add(WEEKDAYS[i])
                if i == j:
                    break
                i = (i + 1) % 7
        elif part in WEEKDAYS:
            days.add(part)
        else:
            raise InvalidTariff(f"unknown day {part!r} in {spec!r} (use mon..sun"
                                f"{' or holiday' if allow_holiday else ''})", path)
    return frozenset(days)


def format_days(days: frozenset[str]) -> str:
    """Canonical spelling of a day set: runs of three or more weekdays as ranges."""
    idx = [i for i, d in enumerate(WEEKDAYS) if d in days]
    parts: list[str] = []
    run: list[int] = []
    for i in idx + [None]:  # type: ignore[list-item]
        if run and (i is None or i != run[-1] + 1):
            if len(run) >= 3:
                parts.append(f"{WEEKDAYS[run[0]]}-{WEEKDAYS[run[-1]]}")
            else:
                parts.extend(WEEKDAYS[k] for k in run)
            run = []
        if i is not None:
            run.append(i)
    if HOLIDAY in days:
        parts.append(HOLIDAY)
    return ",".join(parts)


def _check_keys(data: Any, path: str, allowed: set[str], required: set[str] = frozenset()) -> None:
    if not isinstance(data, Mapping):
        raise InvalidTariff(f"expected an object, got {type(data).__name__}", path)
    unknown = set(data) - allowed
    if unknown:
        raise InvalidTariff(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}", path)
    missing = required - set(data)
    if missing:
        raise InvalidTariff(f"missing key(s) {sorted(missing)}", path)


def _sub(path: str, key: str | int) -> str:
    return f"{path}[{key!r}]" if isinstance(key, str) else f"{path}[{key}]"


# --- rule dataclasses ------------------------------------------------------------------------

@dataclass(frozen=True)
class Band:
    """A duration band: from ``from_min`` to ``to_min`` (``None``: open-ended) after the window starts.

    The price is cumulative per *started* step of ``step_min`` minutes, steps counted
    from the band's start. ``step_min=None`` makes the band flat: ``price`` once, as soon
    as the band is entered.
    """

    from_min: int
    to_min: int | None
    step_min: int | None
    price: Decimal

    def __post_init__(self) -> None:
        _minutes(self.from_min, "from_min")
        _minutes(self.to_min, "to_min", allow_none=True, positive=True)
        _minutes(self.step_min, "step_min", allow_none=True, positive=True)
        object.__setattr__(self, "price", _money(self.price, "price"))
        if self.to_min is not None and self.to_min <= self.from_min:
            raise InvalidTariff(f"band {self.describe()} ends before it starts")
        if self.step_min is not None and self.to_min is not None \
                and (self.to_min - self.from_min) % self.step_min:
            raise InvalidTariff(f"band {self.describe()} is not a whole number of "
                                f"{self.step_min}-min steps (a step may not straddle two bands)")

    def describe(self) -> str:
        to = "open-ended" if self.to_min is None else f"{self.to_min} min"
        step = "flat" if self.step_min is None else f"per started {self.step_min} min"
        return f"{self.from_min} min to {to}, {step} at {self.price}"

    def to_dict(self) -> dict[str, Any]:
        return {"from_min": self.from_min, "to_min": self.to_min, "step_min": self.step_min,
                "price": str(self.price)}

    @classmethod
    def from_dict(cls, data: Any, path: str = "band") -> "Band":
        _check_keys(data, path, {"from_min", "to_min", "step_min", "price"}, {"from_min", "price"})
        try:
            return cls(data["from_min"], data.get("to_min"), data.get("step_min"), data["price"])
        except InvalidTariff as e:
            raise InvalidTariff(e.reason, _join(path, e.path)) from None


def _join(path: str, sub: str) -> str:
    if not sub:
        return path
    return path + sub if sub.startswith("[") else f"{path}.{sub}"


@dataclass(frozen=True)
class Rate:
    """A named price list: contiguous duration bands, and an optional cap per window.

    A *window* is a maximal continuous stretch of a stay under this rate (for example
    one night). Each window starts its own band clock, and ``cap`` limits what one
    window can cost ("night: 0.50 per started hour, at most 4.00").
    """

    name: str
    bands: tuple[Band, ...]
    cap: Decimal | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", self.name):
            raise InvalidTariff(f"rate name must be 1-40 letters, digits, '_', '-' or '.', got {self.name!r}")
        object.__setattr__(self, "bands", tuple(self.bands))
        if self.cap is not None:
            object.__setattr__(self, "cap", _money(self.cap, f"rates[{self.name!r}].cap"))
        if not isinstance(self.label, str):
            raise InvalidTariff("label must be a string", f"rates[{self.name!r}].label")
        where = f"rates[{self.name!r}]"
        if not self.bands:
            raise InvalidTariff("a rate needs at least one band", where)
        for i, b in enumerate(self.bands):
            if not isinstance(b, Band):
                raise InvalidTariff(f"expected a Band, got {type(b).__name__}", f"{where}.bands[{i}]")
        first = self.bands[0]
        if first.from_min != 0:
            raise InvalidTariff(f"gap before bands[0] ({first.describe()}): the first band must start at 0 min",
                                f"{where}.bands[0]")
        for i in range(1, len(self.bands)):
            prev, cur = self.bands[i - 1], self.bands[i]
            if prev.to_min is None:
                raise InvalidTariff(f"bands[{i}] ({cur.describe()}) overlaps bands[{i - 1}] "
                                    f"({prev.describe()}), which is open-ended", f"{where}.bands[{i}]")
            if cur.from_min < prev.to_min:
                raise InvalidTariff(f"bands[{i}] ({cur.describe()}) overlaps bands[{i - 1}] "
                                    f"({prev.describe()}): it starts at {cur.from_min} min, before "
                                    f"{prev.to_min} min", f"{where}.bands[{i}]")
            if cur.from_min > prev.to_min:
                raise InvalidTariff(f"gap between bands[{i - 1}] ({prev.describe()}) and bands[{i}] "
                                    f"({cur.describe()}): nothing is priced from {prev.to_min} to "
                                    f"{cur.from_min} min", f"{where}.bands[{i}]")
        last = self.bands[-1]
        if last.to_min is not None:
            raise InvalidTariff(f"gap after bands[{len(self.bands) - 1}] ({last.describe()}): the last band "
                                f"must be open-ended (to_min null) so that any stay can be priced",
                                f"{where}.bands[{len(self.bands) - 1}]")

    @property
    def title(self) -> str:
        return self.label or self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bands": [b.to_dict() for b in self.bands]}
        if self.cap is not None:
            out["cap"] = str(self.cap)
        if self.label:
            out["label"] = self.label
        return out

    @classmethod
    def from_dict(cls, name: str, data: Any, path: str = "rates") -> "Rate":
        where = _sub(path, name)
        _check_keys(data, where, {"bands", "cap", "label"}, {"bands"})
        if not isinstance(data["bands"], list):
            raise InvalidTariff("expected a list of bands", f"{where}.bands")
        bands = tuple(Band.from_dict(b, f"{where}.bands[{i}]") for i, b in enumerate(data["bands"]))
        return cls(name, bands, data.get("cap"), data.get("label", ""))


@dataclass(frozen=True)
class TimeBand:
    """A stretch of the local day, ``start_min`` to ``end_min`` minutes after midnight, priced by ``rate``."""

    start_min: int
    end_min: int
    rate: str

    def describe(self) -> str:
        return f"{format_hhmm(self.start_min)}-{format_hhmm(self.end_min)} -> {self.rate!r}"


@dataclass(frozen=True)
class DaySchedule:
    """Which rate applies when, on the given days (weekday names and/or ``"holiday"``).

    The bands must cover 00:00-24:00 exactly, in order. A band that should run past
    midnight (a night rate) is written as two bands, ``20:00-24:00`` and ``00:00-08:00``
    of the next day: consecutive stretches under the same rate form one window.
    """

    days: frozenset[str]
    bands: tuple[TimeBand, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "bands", tuple(self.bands))
        bad = self.days - set(WEEKDAYS) - {HOLIDAY}
        if not self.days or bad:
            raise InvalidTariff(f"unknown day(s) {sorted(bad)}" if bad else "no days given", "week")
        where = f"week[{format_days(self.days)!r}]"
        if not self.bands:
            raise InvalidTariff("no time bands: the day must be covered from 00:00 to 24:00", where)
        prev_end = 0
        for i, b in enumerate(self.bands):
            if not isinstance(b, TimeBand):
                raise InvalidTariff(f"expected a TimeBand, got {type(b).__name__}", f"{where}[{i}]")
            for v in (b.start_min, b.end_min):
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= DAY_MIN:
                    raise InvalidTariff(f"time must be 0..1440 minutes after midnight, got {v!r}",
                                        f"{where}[{i}]")
            if b.end_min <= b.start_min:
                raise InvalidTariff(f"band {b.describe()} ends before it starts (write a band that crosses "
                                    f"midnight as two bands, ...-24:00 and 00:00-...)", f"{where}[{i}]")
            if b.start_min < prev_end:
                raise InvalidTariff(f"band [{i}] {b.describe()} overlaps band [{i - 1}] "
                                    f"{self.bands[i - 1].describe()}", f"{where}[{i}]")
            if b.start_min > prev_end:
                after = f"band [{i - 1}] {self.bands[i - 1].describe()}" if i else "midnight"
                raise InvalidTariff(f"gap between {after} and band [{i}] {b.describe()}: nothing applies from "
                                    f"{format_hhmm(prev_end)} to {format_hhmm(b.start_min)}", f"{where}[{i}]")
            prev_end = b.end_min
        if prev_end != DAY_MIN:
            raise InvalidTariff(f"gap after band [{len(self.bands) - 1}] {self.bands[-1].describe()}: "
                                f"nothing applies from {format_hhmm(prev_end)} to 24:00", f"{where}")

    def to_json(self) -> Any:
        if len(self.bands) == 1:
            return self.bands[0].rate
        return [{"from": format_hhmm(b.start_min), "to": format_hhmm(b.end_min), "rate": b.rate}
                for b in self.bands]

    @classmethod
    def from_json(cls, spec: str, value: Any) -> "DaySchedule":
        where = f"week[{spec!r}]"
        days = parse_days(spec, where)
        if isinstance(value, str):
            return cls(days, (TimeBand(0, DAY_MIN, value),))
        if not isinstance(value, list):
            raise InvalidTariff("expected a rate name or a list of {from, to, rate}", where)
        bands = []
        for i, item in enumerate(value):
            _check_keys(item, f"{where}[{i}]", {"from", "to", "rate"}, {"from", "to", "rate"})
            if not isinstance(item["rate"], str):
                raise InvalidTariff("rate must be a rate name", f"{where}[{i}].rate")
            bands.append(TimeBand(parse_hhmm(item["from"], f"{where}[{i}].from"),
                                  parse_hhmm(item["to"], f"{where}[{i}].to"), item["rate"]))
        return cls(days, tuple(bands))


@dataclass(frozen=True)
class DailyCap:
    """At most ``amount`` per day. ``day="rolling"``: each 24 h of true elapsed time from entry;
    ``day="calendar"``: the local day starting at ``change_min`` (e.g. 06:00), 23 h or 25 h on DST days."""

    amount: Decimal
    day: str = "calendar"
    change_min: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _money(self.amount, "daily_cap.amount"))
        if self.day not in ("rolling", "calendar"):
            raise InvalidTariff(f"day must be 'rolling' or 'calendar', got {self.day!r}", "daily_cap.day")
        if isinstance(self.change_min, bool) or not isinstance(self.change_min, int) \
                or not 0 <= self.change_min < DAY_MIN:
            raise InvalidTariff(f"change time must be 00:00..23:59, got {self.change_min!r}",
                                "daily_cap.change_at")
        if self.day == "rolling" and self.change_min:
            raise InvalidTariff("a rolling 24 h day has no change time", "daily_cap.change_at")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"amount": str(self.amount), "day": self.day}
        if self.day == "calendar":
            out["change_at"] = format_hhmm(self.change_min)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "DailyCap":
        _check_keys(data, "daily_cap", {"amount", "day", "change_at"}, {"amount", "day"})
        change = data.get("change_at")
        return cls(data["amount"], data["day"],
                   0 if change is None else parse_hhmm(change, "daily_cap.change_at", allow_24=False))


@dataclass(frozen=True)
class FreeTime:
    """Free time after entry.

    ``mode="threshold"``: a stay no longer than ``minutes`` costs nothing, a longer one is
    priced in full from entry (a drop-off grace). ``mode="deducted"``: the first
    ``minutes`` of every stay are never billed; billing, and the band clock, start when
    they end ("first hour free").
    """

    minutes: int
    mode: str = "threshold"

    def __post_init__(self) -> None:
        _minutes(self.minutes, "free.minutes")
        if self.mode not in ("threshold", "deducted"):
            raise InvalidTariff(f"mode must be 'threshold' or 'deducted', got {self.mode!r}", "free.mode")

    def to_dict(self) -> dict[str, Any]:
        return {"minutes": self.minutes, "mode": self.mode}

    @classmethod
    def from_dict(cls, data: Any) -> "FreeTime":
        _check_keys(data, "free", {"minutes", "mode"}, {"minutes", "mode"})
        return cls(data["minutes"], data["mode"])


@dataclass(frozen=True)
class Rounding:
    """How the total is rounded: ``mode`` to a multiple of ``increment`` (``None``: the currency's minor unit)."""

    mode: str = "half_up"
    increment: Decimal | None = None

    def __post_init__(self) -> None:
        if self.mode not in ROUNDING_MODES:
            raise InvalidTariff(f"mode must be one of {ROUNDING_MODES}, got {self.mode!r}", "rounding.mode")
        if self.increment is not None:
            inc = _money(self.increment, "rounding.increment")
            if inc == 0:
                raise InvalidTariff("increment must be positive", "rounding.increment")
            object.__setattr__(self, "increment", inc)


def _decimals(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


@dataclass(frozen=True)
class Tariff:
    """One immutable tariff version: rates, the weekly schedule, caps, graces and special fees.

    - ``rates``: named price lists; ``week`` says which applies when. A rate that the week
      does not use can still be named by a permit.
    - ``daily_cap``, ``max_per_stay``: ceilings on what a day / a stay can cost (caps and the
      lost-ticket fee must be exact at the rounding increment, so a cap is never exceeded
      by rounding).
    - ``free``: free time after entry (see :class:`FreeTime`); ``reentry_min``: re-entering
      within this many minutes of the previous exit gets no free time.
    - ``exit_grace_min``: after paying, the time to reach the exit: nothing more is due if
      ``exit <= paid_until + exit_grace``.
    - ``leniency_min``: tolerance after paid time: a new unit (a step, the end of free time,
      the end of the paid time) is charged only once it has been used for more than this.
    - ``lost_ticket``: flat fee when the ticket is lost and no plate read proves the entry.
    """

    currency: str
    rates: tuple[Rate, ...]
    week: tuple[DaySchedule, ...]
    rounding: Rounding = Rounding()
    daily_cap: DailyCap | None = None
    max_per_stay: Decimal | None = None
    free: FreeTime | None = None
    exit_grace_min: int = 0
    leniency_min: int = 0
    reentry_min: int = 0
    lost_ticket: Decimal | None = None
    _c: "_Compiled" = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        exp = currency_exponent(self.currency)
        set_ = object.__setattr__
        set_(self, "rates", tuple(self.rates))
        set_(self, "week", tuple(self.week))
        minor = Decimal(1).scaleb(-exp)
        if not isinstance(self.rounding, Rounding):
            raise InvalidTariff("expected a Rounding", "rounding")
        inc = self.rounding.increment
        if inc is None:
            inc = minor
            set_(self, "rounding", Rounding(self.rounding.mode, minor))
        if inc % minor:
            raise InvalidTariff(f"increment {inc} is finer than the minor unit of {self.currency} ({minor})",
                                "rounding.increment")
        for name in ("exit_grace_min", "leniency_min", "reentry_min"):
            _minutes(getattr(self, name), name)
        for name in ("max_per_stay", "lost_ticket"):
            v = getattr(self, name)
            if v is not None:
                v = _money(v, name)
                set_(self, name, v)
                if v % inc:
                    raise InvalidTariff(f"{v} is not a multiple of the rounding increment {inc}", name)
        if self.daily_cap is not None:
            if not isinstance(self.daily_cap, DailyCap):
                raise InvalidTariff("expected a DailyCap", "daily_cap")
            if self.daily_cap.amount % inc:
                raise InvalidTariff(f"{self.daily_cap.amount} is not a multiple of the rounding increment {inc}",
                                    "daily_cap.amount")
        if self.free is not None and not isinstance(self.free, FreeTime):
            raise InvalidTariff("expected a FreeTime", "free")
        names: dict[str, Rate] = {}
        for i, r in enumerate(self.rates):
            if not isinstance(r, Rate):
                raise InvalidTariff(f"expected a Rate, got {type(r).__name__}", f"rates[{i}]")
            if r.name in names:
                raise InvalidTariff(f"rate {r.name!r} is defined twice", "rates")
            names[r.name] = r
        if not self.rates:
            raise InvalidTariff("a tariff needs at least one rate", "rates")
        seen: dict[str, str] = {}
        for sched in self.week:
            if not isinstance(sched, DaySchedule):
                raise InvalidTariff(f"expected a DaySchedule, got {type(sched).__name__}", "week")
            spec = format_days(sched.days)
            for d in sched.days:
                if d in seen:
                    raise InvalidTariff(f"{d!r} is covered twice, by {seen[d]!r} and by {spec!r}", "week")
                seen[d] = spec
            for i, b in enumerate(sched.bands):
                if b.rate not in names:
                    raise InvalidTariff(f"band {b.describe()} names an unknown rate {b.rate!r} "
                                        f"(known: {sorted(names)})", f"week[{spec!r}][{i}]")
        missing = [d for d in WEEKDAYS if d not in seen]
        if missing:
            raise InvalidTariff(f"no schedule for {', '.join(missing)}: every weekday must be covered", "week")
        set_(self, "_c", _Compiled(self, exp, inc))

    # -- lookups ----------------------------------------------------------------------------
    @property
    def exponent(self) -> int:
        """Minor-unit exponent of the currency (EUR 2, JPY 0, KWD 3)."""
        return self._c.exp

    def rate(self, name: str) -> Rate:
        """The rate called ``name`` (e.g. to show a permit's rate); ``TariffError`` if there is none."""
        try:
            return self.rates[self._c.rate_index[name]]
        except KeyError:
            raise TariffError(f"unknown rate {name!r} (known: {sorted(self._c.rate_index)})") from None

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready rules (strings for money). ``Tariff.from_dict(t.to_dict()) == t``."""
        out: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "currency": self.currency,
            "rounding": {"mode": self.rounding.mode, "increment": str(self.rounding.increment)},
            "rates": {r.name: r.to_dict() for r in self.rates},
            "week": {format_days(s.days): s.to_json() for s in self.week},
        }
        if self.daily_cap is not None:
            out["daily_cap"] = self.daily_cap.to_dict()
        if self.max_per_stay is not None:
            out["max_per_stay"] = str(self.max_per_stay)
        if self.free is not None:
            out["free"] = self.free.to_dict()
        for name in ("exit_grace_min", "leniency_min", "reentry_min"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.lost_ticket is not None:
            out["lost_ticket"] = str(self.lost_ticket)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Tariff":
        """Build and validate a tariff from its JSON rules; errors name the offending element."""
        _check_keys(data, "", {"schema", "currency", "rounding", "rates", "week", "daily_cap", "max_per_stay",
                               "free", "exit_grace_min", "leniency_min", "reentry_min", "lost_ticket"},
                    {"currency", "rates", "week"})
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise InvalidTariff(f"unsupported schema version {schema!r} (this engine reads {SCHEMA_VERSION})",
                                "schema")
        rounding = Rounding()
        if data.get("rounding") is not None:
            _check_keys(data["rounding"], "rounding", {"mode", "increment"})
            rounding = Rounding(data["rounding"].get("mode", "half_up"), data["rounding"].get("increment"))
        rates = data["rates"]
        if not isinstance(rates, Mapping):
            raise InvalidTariff("expected an object of named rates", "rates")
        week = data["week"]
        if not isinstance(week, Mapping):
            raise InvalidTariff("expected an object such as {'mon-fri': [...], 'sat,sun': 'weekend'}", "week")
        return cls(
            currency=data["currency"],
            rates=tuple(Rate.from_dict(name, r) for name, r in rates.items()),
            week=tuple(DaySchedule.from_json(spec, v) for spec, v in week.items()),
            rounding=rounding,
            daily_cap=None if data.get("daily_cap") is None else DailyCap.from_dict(data["daily_cap"]),
            max_per_stay=data.get("max_per_stay"),
            free=None if data.get("free") is None else FreeTime.from_dict(data["free"]),
            exit_grace_min=data.get("exit_grace_min", 0),
            leniency_min=data.get("leniency_min", 0),
            reentry_min=data.get("reentry_min", 0),
            lost_ticket=data.get("lost_ticket"),
        )


class _Compiled:
    """Integer tables for the fee walk, built once per tariff.

    Money is scaled to integers of ``10**-scale`` currency units (``scale`` = the largest
    number of decimals used anywhere, at least the currency's), times are microseconds.
    Index ``len(rates)`` is an internal free rate (a free permit).
    """

    __slots__ = ("exp", "scale", "unit", "inc", "mode", "rate_index", "rates", "free_rate", "day_segments",
                 "single_rate", "holiday_differs", "cap_kind", "cap", "cap_change", "max_stay", "lost",
                 "free_min", "free_mode", "leniency_us", "exit_grace_us", "reentry_us")

    def __init__(self, t: Tariff, exp: int, inc: Decimal) -> None:
        amounts = [inc] + [b.price for r in t.rates for b in r.bands] + [r.cap for r in t.rates if r.cap is not None]
        for v in (t.max_per_stay, t.lost_ticket, t.daily_cap.amount if t.daily_cap else None):
            if v is not None:
                amounts.append(v)
        self.exp = exp
        self.scale = max([exp] + [_decimals(a) for a in amounts])
        if self.scale > 12:
            raise InvalidTariff(f"amounts with more than 12 decimals are not supported (scale {self.scale})")
        self.unit = 10 ** (self.scale - exp)  # internal integers per minor unit
        to_int = self.to_int
        self.inc = to_int(inc)
        self.mode = t.rounding.mode
        self.rate_index = {r.name: i for i, r in enumerate(t.rates)}
        rates = []
        for r in t.rates:
            bands = []
            for b in r.bands:
                frm = b.from_min * US_PER_MIN
                to = INF if b.to_min is None else b.to_min * US_PER_MIN
                step = None if b.step_min is None else b.step_min * US_PER_MIN
                bands.append((frm, to, step, to_int(b.price)))
            rates.append((tuple(bands), INF if r.cap is None else to_int(r.cap)))
        self.free_rate = len(rates)
        rates.append((((0, INF, None, 0),), INF))
        self.rates = tuple(rates)
        # Segments per day type: 0..6 = mon..sun, 7 = holiday; ((start_min, rate_index), ...),
        # with neighbouring bands of the same rate merged.
        by_day: dict[str, tuple[tuple[int, int], ...]] = {}
        for sched in t.week:
            segs: list[tuple[int, int]] = []
            for b in sched.bands:
                ri = self.rate_index[b.rate]
                if not segs or segs[-1][1] != ri:
                    segs.append((b.start_min, ri))
            for d in sched.days:
                by_day[d] = tuple(segs)
        week = [by_day[d] for d in WEEKDAYS]
        self.day_segments = tuple(week + [by_day.get(HOLIDAY, ())])
        firsts = {segs[0][1] for segs in week}
        self.single_rate = firsts.pop() if all(len(s) == 1 for s in week) and len(firsts) == 1 else None
        hol = by_day.get(HOLIDAY)
        self.holiday_differs = hol is not None and not (self.single_rate is not None and len(hol) == 1
                                                        and hol[0][1] == self.single_rate)
        dc = t.daily_cap
        self.cap_kind = None if dc is None else dc.day
        self.cap = INF if dc is None else to_int(dc.amount)
        self.cap_change = 0 if dc is None else dc.change_min
        self.max_stay = INF if t.max_per_stay is None else to_int(t.max_per_stay)
        self.lost = None if t.lost_ticket is None else to_int(t.lost_ticket)
        self.free_min = 0 if t.free is None else t.free.minutes
        self.free_mode = None if t.free is None or not t.free.minutes else t.free.mode
        self.leniency_us = t.leniency_min * US_PER_MIN
        self.exit_grace_us = t.exit_grace_min * US_PER_MIN
        self.reentry_us = t.reentry_min * US_PER_MIN

    def to_int(self, d: Decimal) -> int:
        return int(d.scaleb(self.scale))

    def round(self, raw: int) -> int:
        """Round an internal amount to the tariff's increment (result in internal units)."""
        inc = self.inc
        q, r = divmod(raw, inc)
        mode = self.mode
        if r:
            if mode == "half_up":
                q += 2 * r >= inc
            elif mode == "half_even":
                q += 2 * r > inc or (2 * r == inc and q % 2 == 1)
            elif mode == "up":
                q += 1
        return q * inc

    def first_above(self, amount: int) -> int:
        """Smallest internal raw total that rounds to more than ``amount`` (a rounded total)."""
        lo, hi = amount + 1, amount + self.inc  # round(amount + inc) > amount always
        while lo < hi:
            mid = (lo + hi) // 2
            if self.round(mid) > amount:
                hi = mid
            else:
                lo = mid + 1
        return lo
