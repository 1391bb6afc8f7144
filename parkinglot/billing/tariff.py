"""The pure tariff engine: ``quote(entry, exit, tariff, tz, ...) -> Quote``, no database.

How a stay is priced (the rules an attendant explains to a driver):

1. **Billable time.** Billing starts at entry, or when *deducted* free time ends
   ("first hour free"). It stops at exit minus the tariff's leniency: every unit (a step,
   the end of free time, the end of paid time) is charged only once it has been used for
   more than ``leniency_min`` minutes. Durations are true elapsed time (UTC differences).
2. **Windows.** The billable time is cut where the rate in force changes: the weekly
   schedule in *local* wall-clock time (night, weekend, holiday from the site's calendar),
   and a permit's cover. Each window (a maximal run under one rate) starts its own band
   clock: duration bands are counted from the window's start, each band charging its price
   per *started* step. A window's cost is limited by its rate's ``cap``.
3. **Caps.** Charges are point events at the start of each step. All charges of one day
   (a rolling 24 h from entry, or the local calendar day from the change time) together
   never exceed the daily cap, and all charges of the stay never exceed ``max_per_stay``.
   The total is then rounded once (currency minor unit or e.g. 0.05).
4. **Graces.** *Threshold* free time: a stay within it costs nothing. *Exit grace*: after
   paying, nothing more is due if ``exit <= paid_until + exit_grace``; the stay is then
   billed only up to ``paid_until``. *Re-entry*: re-entering within ``reentry_min`` of the
   previous exit gets no free time (neither kind).
5. **Lost ticket.** A flat fee, unless the plate's entry read proves the entry time, in
   which case the stay is priced normally.
6. **Permits.** Covered time is free or at the permit's rate; the rest is priced normally,
   and the permit is applied only if it lowers the price. See :class:`PermitCover`.

Because every charge happens at a fixed instant (the start of its step) and caps only
ever limit what is added, the fee of a stay never decreases as the stay gets longer,
and paying at any instant then continuing never costs more than the whole stay.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import cached_property
from typing import Any, Collection, Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .tariff_model import (
    CURRENCY_EXPONENTS, DAY_MIN, INF, ROUNDING_MODES, US_PER_MIN, WEEKDAYS, Band, DailyCap,
    DaySchedule, FreeTime, InvalidQuoteInput, InvalidTariff, Rate, Rounding, Tariff, TariffError,
    TimeBand, UnknownCurrency, _Compiled, currency_exponent, format_days, format_hhmm, parse_days,
    parse_hhmm,
)
from .tariff_time import (
    US_PER_DAY, clear_caches, from_us, local_instant_us, local_ordinal, schedule_windows, to_us,
    wall_intervals,
)

__all__ = [
    "quote", "Quote", "QuoteLine", "Paid", "PermitCover", "PermitHours",
    "Tariff", "Rate", "Band", "TimeBand", "DaySchedule", "DailyCap", "FreeTime", "Rounding",
    "TariffError", "InvalidTariff", "UnknownCurrency", "InvalidQuoteInput",
    "CURRENCY_EXPONENTS", "ROUNDING_MODES", "currency_exponent", "clear_caches", "LOOKAHEAD",
]

#: How far past the exit ``quote`` looks for the next charge (``paid_until``) and band change.
LOOKAHEAD = timedelta(days=31)
_LOOKAHEAD_US = to_us(datetime(1970, 1, 1, tzinfo=timezone.utc) + LOOKAHEAD)
_UTC = timezone.utc


# --- inputs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Paid:
    """What the stay has already paid: ``amount_minor`` (tariff currency) in total, and ``until``,
    the ``paid_until`` of the last quote paid in full (``None``: none recorded, or the quote
    said it covers the stay for good).

    ``until`` drives the exit grace: an exit at or before ``until + exit_grace_min`` is billed
    only up to ``until``. Whatever the exit, the amount due is ``max(0, fee - amount)``.
    """

    amount_minor: int
    until: datetime | None

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int) or self.amount_minor < 0:
            raise InvalidQuoteInput(f"paid amount must be a non-negative integer of minor units, "
                                    f"got {self.amount_minor!r}")
        if self.until is not None:
            _aware(self.until, "paid until")


@dataclass(frozen=True)
class PermitHours:
    """Local hours a permit is valid on ``days`` (weekday names): from ``start_min`` to ``end_min``
    minutes after midnight; an end at or before the start runs past midnight into the next day
    (``18:00-08:00``). Holidays do not change a permit's hours."""

    days: frozenset[str]
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", frozenset(self.days))
        if not self.days or not self.days <= set(WEEKDAYS):
            raise InvalidQuoteInput(f"permit days must be weekday names, got {sorted(self.days)}")
        for v in (self.start_min, self.end_min):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= DAY_MIN:
                raise InvalidQuoteInput(f"permit hours must be 00:00..24:00, got {v!r}")
        if self.start_min == self.end_min or self.start_min == DAY_MIN:
            raise InvalidQuoteInput(f"empty permit hours {format_hhmm(self.start_min)}-{format_hhmm(self.end_min)}")

    def to_dict(self) -> dict[str, str]:
        return {"days": format_days(self.days), "from": format_hhmm(self.start_min),
                "to": format_hhmm(self.end_min)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PermitHours":
        try:
            return cls(parse_days(data["days"], "permit hours", allow_holiday=False),
                       parse_hhmm(data["from"], "permit hours"), parse_hhmm(data["to"], "permit hours"))
        except (KeyError, TypeError):
            raise InvalidQuoteInput(f"permit hours must look like {{'days': 'mon-fri', 'from': '08:00', "
                                    f"'to': '18:00'}}, got {data!r}") from None
        except InvalidTariff as e:
            raise InvalidQuoteInput(str(e)) from None


@dataclass(frozen=True)
class PermitCover:
    """A valid permit for the stay's vehicle (the caller has checked plate, status and site).

    The permit covers the instants inside ``[valid_from, valid_to)`` *and* inside its
    ``hours`` (``None``: all hours). Covered time is priced by the tariff's rate named
    ``rate``, or is free when ``rate`` is ``None``. The rule for the rest of the stay: each
    uncovered stretch is priced by the normal schedule, as windows of their own (a stretch
    before the permit's hours start and one after they end each start their band clock).
    Free time, the daily cap and the maximum per stay apply to the stay as a whole, covered
    and uncovered parts together.

    Best price: because a covered stretch restarts the band clock of the stretch after it
    (a new started step), a permit could in rare cases make a stay dearer. ``quote``
    therefore prices the stay with and without the permit and charges the lower; a permit
    never costs its holder more than a visitor pays (``Quote.permit_applied`` says which).
    """

    valid_from: datetime
    valid_to: datetime
    hours: tuple[PermitHours, ...] | None = None
    rate: str | None = None
    label: str = "Permit"

    def __post_init__(self) -> None:
        _aware(self.valid_from, "permit valid_from")
        _aware(self.valid_to, "permit valid_to")
        if to_us(self.valid_to) <= to_us(self.valid_from):  # elapsed time, not the wall clock
            raise InvalidQuoteInput("permit valid_to must be after valid_from")
        if self.hours is not None:
            object.__setattr__(self, "hours", tuple(self.hours))
            if not self.hours or not all(isinstance(h, PermitHours) for h in self.hours):
                raise InvalidQuoteInput("permit hours must be a non-empty list of PermitHours (or None: all hours)")

    @classmethod
    def from_record(cls, valid_from: datetime, valid_to: datetime, hours: list[Mapping[str, Any]] | None,
                    rate: str | None = None, label: str = "Permit") -> "PermitCover":
        """From a ``Permit`` row: ``hours`` is its JSON, ``[{"days": "mon-fri", "from": "07:00", "to": "19:00"}]``."""
        return cls(valid_from, valid_to, None if hours is None else tuple(PermitHours.from_dict(h) for h in hours),
                   rate, label)


# --- outputs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuoteLine:
    """One line of the itemised breakdown. The lines' amounts add up to ``Quote.amount`` exactly.

    ``kind``: ``charge`` (a band of a rate: ``units`` steps at ``unit_price``), ``window_cap``,
    ``daily_cap``, ``stay_max`` (negative: what a cap took off), ``free_time`` (negative: a
    stay inside threshold free time), ``rounding``, ``lost_ticket``. ``start``/``end``: the
    period the line is about (for a charge: the time its steps cover), UTC.
    """

    kind: str
    label: str
    amount: Decimal
    start: datetime | None = None
    end: datetime | None = None
    units: int | None = None
    unit_price: Decimal | None = None
    rate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "amount": str(self.amount),
                "start": _iso(self.start), "end": _iso(self.end), "units": self.units,
                "unit_price": None if self.unit_price is None else str(self.unit_price), "rate": self.rate}


@dataclass(frozen=True)
class Quote:
    """The price of a stay under one tariff version; equal inputs give an equal Quote.

    - ``amount`` / ``amount_minor``: the fee for the stay as billed, rounded; ``due`` /
      ``due_minor``: what is still to pay, ``max(0, amount - paid)``.
    - ``paid_until``: the last instant the amount covers: exiting at or before it costs no
      more (after paying this amount, the exit grace counts from here). ``None``: the
      amount covers the stay for good (the maximum per stay is reached, or a lost-ticket
      fee). It is never later than the true point where the fee rises, and it is at most
      :data:`LOOKAHEAD` after the exit when nothing would be charged before that.
    - ``next_band_at``: the next instant after the exit at which the rule in force changes
      (free time ends, the next duration band, time-of-day band or permit hours begin);
      ``None`` if none within :data:`LOOKAHEAD`.
    - ``basis``: ``tariff``, ``free_time`` (inside threshold free time), ``exit_grace``
      (left within the exit grace, billed up to ``paid_until``) or ``lost_ticket``.
    - ``billed_from`` / ``billed_to``: the billable time the walk priced.
    - ``permit_applied``: the permit lowered the price (the lines show its windows).
    - ``lines``: the itemised breakdown, see :class:`QuoteLine`.
    """

    currency: str
    amount: Decimal
    amount_minor: int
    due: Decimal
    due_minor: int
    paid_minor: int
    basis: str
    entry: datetime
    exit: datetime
    billed_from: datetime
    billed_to: datetime
    paid_until: datetime | None
    next_band_at: datetime | None
    permit_applied: bool
    items: tuple[Any, ...] = field(repr=False)
    tariff: Tariff = field(repr=False, compare=False)

    @cached_property
    def lines(self) -> tuple[QuoteLine, ...]:
        return _lines(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (money as strings, times as ISO 8601 UTC)."""
        return {
            "currency": self.currency, "amount": str(self.amount), "amount_minor": self.amount_minor,
            "due": str(self.due), "due_minor": self.due_minor, "paid_minor": self.paid_minor,
            "basis": self.basis, "entry": _iso(self.entry), "exit": _iso(self.exit),
            "billed_from": _iso(self.billed_from), "billed_to": _iso(self.billed_to),
            "paid_until": _iso(self.paid_until), "next_band_at": _iso(self.next_band_at),
            "permit_applied": self.permit_applied,
            "lines": [ln.to_dict() for ln in self.lines],
        }


# --- the engine ---------------------------------------------------------------------------------

def quote(
    entry: datetime,
    exit: datetime,
    tariff: Tariff,
    tz: str | tzinfo,
    *,
    paid: Paid | None = None,
    permit: PermitCover | None = None,
    holidays: Collection[date] = frozenset(),
    lost_ticket: bool = False,
    entry_proven: bool = False,
    previous_exit: datetime | None = None,
) -> Quote:
    """Price a stay from ``entry`` to ``exit`` (aware datetimes) under ``tariff`` in the site's zone ``tz``.

    ``paid``: what was paid before (see :class:`Paid`). ``permit``: a valid permit of the
    vehicle (:class:`PermitCover`). ``holidays``: the site's holiday calendar, local dates.
    ``lost_ticket``: the ticket is lost; then the tariff's flat lost-ticket fee applies
    unless ``entry_proven`` (the plate's entry read proves ``entry``). ``previous_exit``:
    the vehicle's last exit from this site, for the re-entry rule.

    Raises :class:`InvalidQuoteInput` for naive datetimes, an exit before the entry, an
    unknown time zone, an unknown permit rate, or a lost ticket under a tariff without a
    lost-ticket fee.
    """
    if not isinstance(tariff, Tariff):
        raise InvalidQuoteInput(f"expected a Tariff, got {type(tariff).__name__}")
    zone = _zone(tz)
    _aware(entry, "entry")
    _aware(exit, "exit")
    c = tariff._c
    entry_us = to_us(entry)
    exit_us = to_us(exit)
    if exit_us < entry_us:
        raise InvalidQuoteInput(f"exit {exit.isoformat()} is before entry {entry.isoformat()}")
    paid_minor = 0
    until_us: int | None = None
    if paid is not None:
        if not isinstance(paid, Paid):
            raise InvalidQuoteInput(f"paid must be a Paid, got {type(paid).__name__}")
        paid_minor = paid.amount_minor
        until_us = INF if paid.until is None else to_us(paid.until)

    if lost_ticket and not entry_proven:
        if c.lost is None:
            raise InvalidQuoteInput("the ticket is lost and the entry is not proven, but this tariff has no "
                                    "lost-ticket fee: an attendant must settle the stay")
        return _make_quote(tariff, c.lost, paid_minor, "lost_ticket", entry_us, exit_us, entry_us, entry_us,
                           None, None, (("lost", c.lost),))
    prate = None
    if permit is not None:
        if not isinstance(permit, PermitCover):
            raise InvalidQuoteInput(f"permit must be a PermitCover, got {type(permit).__name__}")
        if permit.rate is None:
            prate = c.free_rate
        elif permit.rate in c.rate_index:
            prate = c.rate_index[permit.rate]
        else:
            raise InvalidQuoteInput(f"permit rate {permit.rate!r} is not a rate of this tariff "
                                    f"(known: {sorted(c.rate_index)})")

    free_us = c.free_min * US_PER_MIN if c.free_mode else 0
    if previous_exit is not None:
        _aware(previous_exit, "previous_exit")
        prev_us = to_us(previous_exit)
        if prev_us > entry_us:
            raise InvalidQuoteInput(f"previous exit {previous_exit.isoformat()} is after this entry "
                                    f"{entry.isoformat()}")
        if c.reentry_us and entry_us - prev_us <= c.reentry_us:
            free_us = 0
    deducted = c.free_mode == "deducted" and free_us > 0
    threshold = c.free_mode == "threshold" and free_us > 0
    start = entry_us + free_us if deducted else entry_us
    leniency = c.leniency_us

    basis = "tariff"
    end = exit_us
    if until_us is not None and exit_us <= until_us + c.exit_grace_us:
        if exit_us > until_us:
            end = until_us
            basis = "exit_grace"
    billed_to = end - leniency
    in_free = threshold and billed_to - entry_us <= free_us
    if in_free:
        basis = "free_time"

    horizon = exit_us + _LOOKAHEAD_US
    holidays = holidays if isinstance(holidays, (frozenset, set)) else frozenset(holidays)
    free_end = entry_us + free_us
    args = (c, zone, start, billed_to, exit_us, horizon, entry_us, holidays, in_free, free_end, leniency)
    amount, items, paid_until, next_band = _price(*args, None)
    permit_applied = False
    if permit is not None:
        p_amount, p_items, p_until, p_band = _price(*args, (permit, prate))
        if p_amount <= amount:
            # The lower price wins; on a tie the fee stays put as long as either variant's does.
            if p_amount == amount and (paid_until is None or (p_until is not None and paid_until > p_until)):
                p_until = paid_until
            amount, items, paid_until, next_band = p_amount, (("permit", permit.label),) + p_items, p_until, p_band
            permit_applied = True
    if exit_us < start:
        next_band = start
    elif threshold and exit_us < free_end and (next_band is None or free_end < next_band):
        next_band = free_end
    return _make_quote(tariff, amount, paid_minor, basis, entry_us, exit_us, start, max(start, billed_to),
                       paid_until, next_band, items, permit_applied)


def _price(c: _Compiled, zone: tzinfo, start: int, billed_to: int, exit_us: int, horizon: int, entry_us: int,
           holidays: Collection[date], in_free: bool, free_end: int, leniency: int,
           permit: tuple[PermitCover, int] | None) -> tuple[int, tuple[Any, ...], int | None, int | None]:
    """One pricing of the stay (with or without the permit): amount, items, paid_until, next_band."""
    if permit is None:
        windows = schedule_windows(c, zone, start, horizon, holidays)
    else:
        windows = _permit_windows(schedule_windows(c, zone, start, horizon, holidays),
                                  _coverage(permit[0], zone, start, horizon), permit[1])
    raw, items, next_charge, forever, next_band = _walk(c, windows, start, billed_to, exit_us, horizon,
                                                        entry_us, zone)
    amount = c.round(raw)
    if amount != raw:
        items = items + (("round", amount - raw),)
    paid_until: int | None
    if in_free:  # the stay is inside threshold free time: everything above is waived
        paid_until = free_end + leniency
        if amount == 0:
            if next_charge is not None:
                paid_until = max(paid_until, next_charge + leniency)
            elif forever:
                paid_until = None
            else:
                paid_until = max(paid_until, horizon)
        items = items + (("free", -amount),)
        amount = 0
    elif next_charge is not None:
        paid_until = next_charge + leniency
    else:
        paid_until = None if forever else horizon
    return amount, items, paid_until, next_band


def _make_quote(tariff: Tariff, amount: int, paid_minor: int, basis: str, entry_us: int, exit_us: int,
                billed_from: int, billed_to: int, paid_until: int | None, next_band: int | None,
                items: tuple[Any, ...], permit_applied: bool = False) -> Quote:
    c = tariff._c
    amount_minor = amount // c.unit
    due_minor = amount_minor - paid_minor if amount_minor > paid_minor else 0
    return Quote(
        tariff.currency, Decimal(amount_minor).scaleb(-c.exp), amount_minor,
        Decimal(due_minor).scaleb(-c.exp), due_minor, paid_minor, basis,
        from_us(entry_us), from_us(exit_us), from_us(billed_from), from_us(billed_to),
        None if paid_until is None or paid_until >= INF else from_us(paid_until),
        None if next_band is None or next_band >= INF else from_us(next_band),
        permit_applied, items, tariff,
    )


def _walk(c: _Compiled, windows: Iterator[tuple[int, int, int, bool]], start: int, end: int, exit_us: int,
          horizon: int, entry_us: int, zone: tzinfo):
    """Walk the stay window by window, band by band, day by day (never minute by minute).

    Charges every step that starts before ``end``, within the window, day and stay
    budgets; then keeps walking to find the first step that would raise the rounded
    total (``next_charge``) and the band change after ``exit_us``.
    Returns ``(raw_total, items, next_charge, forever, next_band)``.
    """
    rates = c.rates
    cap = c.cap
    kind = c.cap_kind
    # The day of the daily cap that contains ``start``: [d_start, d_end).
    if kind is None:
        d_start, d_end, o = 0, INF, 0
    elif kind == "rolling":
        k = (start - entry_us) // US_PER_DAY
        d_start = entry_us + k * US_PER_DAY
        d_end = d_start + US_PER_DAY
        o = 0
    else:
        change = c.cap_change
        o = local_ordinal(start, zone)
        d_start = local_instant_us(zone, o, change)
        if d_start > start:
            o -= 1
            d_start = local_instant_us(zone, o, change)
        d_end = local_instant_us(zone, o + 1, change)
    dleft = cap
    sleft = c.max_stay
    raw = 0          # charged so far (steps starting before ``end``)
    ahead = 0        # running total while looking ahead
    target = 0       # smallest raw total that rounds above the quoted amount
    phase = 0        # 0: charging, 1: looking for the next charge, 2: found / nothing more
    next_charge = None
    forever = False
    next_band = None
    band_done = exit_us < start
    items: list[tuple[Any, ...]] = []
    for ws, we, ri, cov in windows:
        if ws >= horizon:
            break
        bands, wcap = rates[ri]
        if not band_done and we > exit_us:
            next_band = we
            for bf, bt, st, p in bands:
                if ws + bt > exit_us:
                    if ws + bt < next_band:
                        next_band = ws + bt
                    break
            band_done = True
        if phase == 2:
            if band_done:
                break
            continue
        wleft = wcap
        bi = -1
        for bf, bt, st, p in bands:
            bi += 1
            bs = ws + bf
            if bs >= we:
                break
            be = ws + bt
            if be > we:
                be = we
            if st is None:
                st = INF
            t = bs
            while t < be:
                if t >= d_end:
                    while t >= d_end:
                        if kind == "rolling":
                            d_start = d_end
                            d_end += US_PER_DAY
                        else:
                            o += 1
                            d_start = d_end
                            d_end = local_instant_us(zone, o + 1, change)
                    dleft = cap
                seg_end = be if be < d_end else d_end
                n = (seg_end - t + st - 1) // st
                if phase == 0:
                    if t < end:
                        nc = n if seg_end <= end else (end - t + st - 1) // st
                        gross = nc * p
                        budget = wleft if wleft < dleft else dleft
                        if sleft < budget:
                            budget = sleft
                        if gross <= budget:
                            charge = gross
                            items.append((ri, cov, bi, ws, be, t, nc, st, p))
                        else:
                            charge = budget
                            items.append((ri, cov, bi, ws, be, t, nc, st, p))
                            if budget == wleft:
                                items.append(("wcap", gross - budget, ri, cov, ws, we))
                            elif budget == dleft:
                                items.append(("dcap", gross - budget, d_start, d_end))
                            else:
                                items.append(("smax", gross - budget))
                        raw += charge
                        wleft -= charge
                        dleft -= charge
                        sleft -= charge
                        t += nc * st
                        if nc == n:
                            continue
                        n -= nc
                    phase = 1
                    ahead = raw
                    target = c.first_above(c.round(raw))
                # phase 1: look ahead for the first step that raises the rounded total
                if sleft <= 0:
                    forever = True
                    phase = 2
                    break
                if t >= horizon:
                    phase = 2
                    break
                budget = wleft if wleft < dleft else dleft
                if sleft < budget:
                    budget = sleft
                if p and budget > 0:
                    gain = n * p
                    if gain > budget:
                        gain = budget
                    if ahead + gain >= target:
                        next_charge = t + ((target - ahead + p - 1) // p - 1) * st
                        phase = 2
                        break
                    ahead += gain
                    wleft -= gain
                    dleft -= gain
                    sleft -= gain
                t += n * st
            if phase == 2:
                break
        if phase == 2 and band_done:
            break
    return raw, tuple(items), next_charge, forever, next_band


def _coverage(permit: PermitCover, zone: tzinfo, start: int, horizon: int) -> Iterator[tuple[int, int]]:
    """The permit's covered intervals ``[a, b)`` from ``start`` on, sorted and merged."""
    vf, vt = to_us(permit.valid_from), to_us(permit.valid_to)
    lo = vf if vf > start else start
    if permit.hours is None:
        if lo < vt:
            yield lo, vt
        return
    stop = vt if vt < horizon else horizon
    o = local_ordinal(start, zone) - 1  # hours that began the day before can run into the first day
    pending: tuple[int, int] | None = None
    while local_instant_us(zone, o, 0) < stop:
        weekday = WEEKDAYS[(o + 6) % 7]
        found: list[tuple[int, int]] = []
        for h in permit.hours:
            if weekday in h.days:
                if h.end_min > h.start_min:
                    found += wall_intervals(zone, o, h.start_min, h.end_min)
                else:  # runs past midnight into the next day
                    found += wall_intervals(zone, o, h.start_min, DAY_MIN)
                    found += wall_intervals(zone, o + 1, 0, h.end_min)
        found.sort()
        for a, b in found:
            a = a if a > lo else lo
            b = b if b < vt else vt
            if a >= b:
                continue
            if pending is not None and a <= pending[1]:
                if b > pending[1]:
                    pending = (pending[0], b)
            else:
                if pending is not None:
                    yield pending
                pending = (a, b)
        o += 1
    if pending is not None:
        yield pending


def _permit_windows(windows: Iterator[tuple[int, int, int, bool]], cover: Iterator[tuple[int, int]],
                    permit_rate: int) -> Iterator[tuple[int, int, int, bool]]:
    """Overlay the permit's cover on the schedule's windows, merging equal neighbours."""
    cov = next(cover, None)
    cur: list[Any] | None = None  # [start, end, rate, covered]
    for ws, we, ri, _ in windows:
        t = ws
        while t < we:
            while cov is not None and cov[1] <= t:
                cov = next(cover, None)
            if cov is not None and cov[0] <= t:
                e = cov[1] if cov[1] < we else we
                key_r, key_c = permit_rate, True
            else:
                e = cov[0] if cov is not None and cov[0] < we else we
                key_r, key_c = ri, False
            if cur is not None and cur[2] == key_r and cur[3] == key_c and cur[1] == t:
                cur[1] = e
            else:
                if cur is not None:
                    yield cur[0], cur[1], cur[2], cur[3]
                cur = [t, e, key_r, key_c]
            t = e
    if cur is not None:
        yield cur[0], cur[1], cur[2], cur[3]


# --- breakdown ------------------------------------------------------------------------------------

def _lines(q: Quote) -> tuple[QuoteLine, ...]:
    t = q.tariff
    c = t._c
    scale = -c.scale

    def money(v: int) -> Decimal:
        return Decimal(v).scaleb(scale)

    def when(us: int) -> datetime | None:
        return None if us >= INF else from_us(us)

    permit_label = next((it[1] for it in q.items if it[0] == "permit"), "Permit")

    def rate_name(ri: int, cov: bool) -> tuple[str, str]:
        if ri == c.free_rate:
            return "permit", f"{permit_label} (free)"
        r = t.rates[ri]
        return r.name, f"{permit_label}: {r.title}" if cov else r.title

    charges: dict[tuple[Any, ...], list[Any]] = {}
    caps: dict[tuple[Any, ...], list[Any]] = {}
    for it in q.items:
        tag = it[0]
        if isinstance(tag, int):
            ri, cov, bi, ws, be, t0, n, st, p = it
            key = (ws, ri, cov, bi)
            cover_end = min(t0 + n * st, be)
            if key in charges:
                line = charges[key]
                line[1] += n
                line[3] = cover_end
            else:
                charges[key] = [t0, n, p, cover_end, ri, cov, bi, st]
        elif tag in ("wcap", "dcap", "smax"):
            key = (tag,) + tuple(it[2:])
            if key in caps:
                caps[key][0] += it[1]
            else:
                caps[key] = [it[1]]
    out: list[QuoteLine] = []
    for (ws, ri, cov, bi), (t0, n, p, cover_end, _, _, _, st) in charges.items():
        name, title = rate_name(ri, cov)
        if st >= INF:
            label = f"{title}: flat {money(p)}"
        else:
            label = f"{title}: {n} x started {_dur(st)} at {money(p)}"
        out.append(QuoteLine("charge", label, money(n * p), when(t0), when(cover_end), n, money(p), name))
    for key, (red,) in caps.items():
        tag = key[0]
        if tag == "wcap":
            _, ri, cov, ws, we = key
            name, title = rate_name(ri, cov)
            out.append(QuoteLine("window_cap", f"{title}: at most {t.rates[ri].cap} per window", -money(red),
                                 when(ws), when(we), rate=name))
        elif tag == "dcap":
            _, a, b = key
            dc = t.daily_cap
            day = "24 h from entry" if dc.day == "rolling" else f"day from {format_hhmm(dc.change_min)}"
            out.append(QuoteLine("daily_cap", f"Daily cap {dc.amount} ({day})", -money(red), when(a), when(b)))
        else:
            out.append(QuoteLine("stay_max", f"Maximum per stay {t.max_per_stay}", -money(red)))
    for it in q.items:
        if it[0] == "free":
            out.append(QuoteLine("free_time", f"Free time: stay within {t.free.minutes} min", money(it[1]),
                                 q.entry, q.entry + timedelta(minutes=t.free.minutes)))
        elif it[0] == "round":
            out.append(QuoteLine("rounding", f"Rounding ({t.rounding.mode} to {t.rounding.increment})",
                                 money(it[1])))
        elif it[0] == "lost":
            out.append(QuoteLine("lost_ticket", f"Lost ticket: flat {t.lost_ticket}", money(it[1])))
    return tuple(out)


def _dur(us: int) -> str:
    m = us // US_PER_MIN
    if m % 1440 == 0:
        return f"{m // 1440} d"
    if m % 60 == 0:
        return f"{m // 60} h"
    return f"{m} min"


# --- small helpers ----------------------------------------------------------------------------------

def _aware(dt: Any, what: str) -> None:
    if not isinstance(dt, datetime):
        raise InvalidQuoteInput(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidQuoteInput(f"{what} {dt.isoformat()} is a naive datetime: pass an aware time "
                                f"(UTC or the site's zone)")


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, str):
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidQuoteInput(f"unknown time zone {tz!r}") from None
    raise InvalidQuoteInput(f"time zone must be an IANA name or a tzinfo, got {type(tz).__name__}")


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()
