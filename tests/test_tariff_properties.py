"""Property tests (hypothesis) of the tariff engine, and a minute-by-minute reference model.

Random tariffs cover every rule shape (bands, time-of-day and weekend schedules, holidays,
window caps, rolling and calendar daily caps, maximum per stay, all graces, rounding to
0.05, currencies with 0/2/3 decimals). Random stays cluster around the 2024 DST changes
of Europe/Berlin and America/New_York.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from parkinglot.billing.tariff import LOOKAHEAD, Paid, PermitCover, PermitHours, Tariff, quote
from parkinglot.billing.tariff_model import HOLIDAY, WEEKDAYS

UTC = timezone.utc
ZONES = {"Europe/Berlin": ZoneInfo("Europe/Berlin"), "America/New_York": ZoneInfo("America/New_York")}
# 2024 clock changes, UTC: (spring forward, fall back) per zone.
TRANSITIONS = {
    "Europe/Berlin": [datetime(2024, 3, 31, 1, 0, tzinfo=UTC), datetime(2024, 10, 27, 1, 0, tzinfo=UTC)],
    "America/New_York": [datetime(2024, 3, 10, 7, 0, tzinfo=UTC), datetime(2024, 11, 3, 6, 0, tzinfo=UTC)],
}
MINUTE = timedelta(minutes=1)
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXP = {"EUR": 2, "JPY": 0, "KWD": 3, "CHF": 2}
# Wall-clock cut points, several inside the DST gap or the repeated hour of both zones.
CUTS = [60, 90, 120, 150, 180, 420, 480, 1080, 1200, 1320]


# --- strategies ------------------------------------------------------------------------------------

@st.composite
def tariff_rules(draw, *, time_of_day: bool = True, caps: bool = True, graces: bool = True) -> dict:
    currency = draw(st.sampled_from(sorted(EXP)))
    exp = EXP[currency]
    inc = Decimal("0.05") if currency == "CHF" else Decimal(1).scaleb(-exp)

    def price() -> str:
        extra = draw(st.sampled_from([0, 0, 0, 1]))  # sometimes finer than the minor unit
        return str(Decimal(draw(st.integers(0, 400))).scaleb(-exp - extra))

    def amount(lo: int, hi: int) -> str:
        return str(inc * draw(st.integers(lo, hi)))

    rates = {}
    for k in range(draw(st.integers(1, 3))):
        bands, start = [], 0
        n_bands = draw(st.integers(1, 3))
        for i in range(n_bands):
            step = draw(st.sampled_from([1, 5, 15, 30, 60, 120, None]))
            last = i == n_bands - 1
            length = None if last else (step or 30) * draw(st.integers(1, 4))
            bands.append({"from_min": start, "to_min": None if last else start + length, "step_min": step,
                          "price": price()})
            start = None if last else start + length
        rate = {"bands": bands}
        if caps and draw(st.booleans()):
            rate["cap"] = amount(1, 300)
        rates[f"r{k}"] = rate
    names = sorted(rates)
    if not time_of_day or draw(st.booleans()):
        week = {"mon-sun": draw(st.sampled_from(names))}
    else:
        def day():
            cuts = sorted(draw(st.sets(st.sampled_from(CUTS), min_size=1, max_size=3)))
            edges = [0] + cuts + [1440]
            return [{"from": f"{a // 60:02d}:{a % 60:02d}", "to": f"{b // 60:02d}:{b % 60:02d}",
                     "rate": draw(st.sampled_from(names))} for a, b in zip(edges, edges[1:])]
        week = {"mon-fri": day(), "sat,sun": day()}
        if draw(st.booleans()):
            week["holiday"] = day()
    rules = {"currency": currency, "rates": rates, "week": week}
    if currency == "CHF":
        rules["rounding"] = {"mode": draw(st.sampled_from(["half_up", "half_even", "up", "down"])),
                             "increment": "0.05"}
    elif draw(st.booleans()):
        rules["rounding"] = {"mode": draw(st.sampled_from(["half_up", "half_even", "up", "down"]))}
    if caps:
        kind = draw(st.sampled_from([None, "rolling", "calendar"]))
        if kind == "rolling":
            rules["daily_cap"] = {"amount": amount(1, 600), "day": "rolling"}
        elif kind == "calendar":
            change = draw(st.sampled_from(["00:00", "02:30", "06:00"]))
            rules["daily_cap"] = {"amount": amount(1, 600), "day": "calendar", "change_at": change}
        if draw(st.booleans()):
            rules["max_per_stay"] = amount(1, 2000)
    if graces:
        if draw(st.booleans()):
            rules["free"] = {"minutes": draw(st.integers(0, 90)), "mode": draw(st.sampled_from(["threshold",
                                                                                                 "deducted"]))}
        rules["leniency_min"] = draw(st.sampled_from([0, 0, 3, 10]))
        rules["exit_grace_min"] = draw(st.sampled_from([0, 10, 20]))
        rules["reentry_min"] = draw(st.sampled_from([0, 30]))
    rules["lost_ticket"] = amount(0, 100)
    return rules


tariffs = tariff_rules().map(Tariff.from_dict)


def utc(dt: datetime) -> datetime:
    """Tests do time arithmetic in UTC: on two datetimes of one ZoneInfo, ``+``/``-`` are
    wall-clock operations (and ``+`` drops ``fold``), not elapsed time."""
    return dt.astimezone(UTC)


@st.composite
def stays(draw, *, whole_minutes: bool = False, max_minutes: int = 4 * 1440):
    """(zone name, entry, exit) around a 2024 DST change (or an ordinary day), as local times."""
    zone = draw(st.sampled_from(sorted(ZONES)))
    anchor = draw(st.sampled_from(TRANSITIONS[zone] + [datetime(2024, 6, 12, 10, 0, tzinfo=UTC)]))
    if whole_minutes:
        entry = anchor + MINUTE * draw(st.integers(-36 * 60, 12 * 60))
        exit_ = entry + MINUTE * draw(st.integers(0, max_minutes))
    else:
        entry = anchor + timedelta(seconds=draw(st.integers(-36 * 3600, 12 * 3600)))
        exit_ = entry + timedelta(seconds=draw(st.integers(0, max_minutes * 60)))
    return zone, entry.astimezone(ZONES[zone]), exit_.astimezone(ZONES[zone])


@st.composite
def contexts(draw, entry: datetime, tariff: Tariff):
    """Optional holidays, permit and previous exit for a stay."""
    kw: dict = {}
    entry = entry.astimezone(UTC)  # arithmetic in elapsed time, not on the wall clock
    local = entry.astimezone(ZoneInfo("Europe/Berlin")).date()
    if draw(st.booleans()):
        kw["holidays"] = frozenset(local + timedelta(days=k) for k in draw(st.sets(st.integers(-1, 3), max_size=2)))
    if draw(st.integers(0, 3)) == 0:
        hours = None
        if draw(st.booleans()):
            a, b = draw(st.sampled_from(CUTS)), draw(st.sampled_from(CUTS + [1440]))
            assume(a != b)
            hours = (PermitHours(frozenset(draw(st.sets(st.sampled_from(WEEKDAYS), min_size=1))), a, b),)
        vf = entry + MINUTE * draw(st.integers(-600, 600))
        vt = vf + MINUTE * draw(st.integers(1, 3000))
        rate = draw(st.sampled_from([None] + [r.name for r in tariff.rates]))
        kw["permit"] = PermitCover(vf, vt, hours, rate)
    if draw(st.booleans()):
        kw["previous_exit"] = entry - MINUTE * draw(st.integers(0, 90))
    return kw


# --- the reference model ------------------------------------------------------------------------------

_ROUND = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "up": ROUND_CEILING, "down": ROUND_FLOOR}
_INF = Decimal("Infinity")


def reference_amount(entry, exit_, tariff: Tariff, tz, *, holidays=frozenset(), permit=None,
                     previous_exit=None) -> Decimal:
    """The fee, minute by minute, straight from the rules as written (slow, whole minutes only).

    At each minute of billable time: the rate is the schedule's for the wall-clock time shown
    then (or the permit's, when the permit covers that minute); a window is a run of equal
    rates; the band is found from the minutes since the window began; a step starting now is
    charged its price, limited by what the window cap, the day cap and the stay maximum have
    left. A calendar day starts the first time the wall clock reaches its change time. A
    permit is used only when it lowers the price.
    """
    plain = _reference(entry, exit_, tariff, tz, holidays, None, previous_exit)
    if permit is None:
        return plain
    return min(plain, _reference(entry, exit_, tariff, tz, holidays, permit, previous_exit))


def _reference(entry, exit_, tariff, tz, holidays, permit, previous_exit) -> Decimal:
    # UTC throughout: arithmetic on two datetimes of the same ZoneInfo is wall-clock arithmetic.
    entry, exit_ = entry.astimezone(UTC), exit_.astimezone(UTC)
    free = tariff.free.minutes if tariff.free else 0
    if previous_exit is not None and tariff.reentry_min and entry - previous_exit <= MINUTE * tariff.reentry_min:
        free = 0
    mode = tariff.free.mode if tariff.free and free else None
    start = entry + MINUTE * free if mode == "deducted" else entry
    end = exit_ - MINUTE * tariff.leniency_min
    if mode == "threshold" and end - entry <= MINUTE * free:
        return Decimal(0)
    rates = {r.name: r for r in tariff.rates}
    schedule = {d: s for s in tariff.week for d in s.days}
    dc = tariff.daily_cap
    stay_left = tariff.max_per_stay if tariff.max_per_stay is not None else _INF
    total = Decimal(0)
    window = day = None
    window_start = None
    window_left = day_left = _INF
    max_wall = max((start - MINUTE * k).astimezone(tz).replace(tzinfo=None) for k in range(0, 181))
    t = start
    while t < end:
        local = t.astimezone(tz)
        wall = local.replace(tzinfo=None)
        d = local.date()
        kind = HOLIDAY if d in holidays and HOLIDAY in schedule else WEEKDAYS[d.weekday()]
        m = local.hour * 60 + local.minute
        name = next(b.rate for b in schedule[kind].bands if b.start_min <= m < b.end_min)
        covered = permit is not None and _covers(permit, t, wall)
        key = ("permit", permit.rate) if covered else ("site", name)
        rate = (rates[permit.rate] if permit.rate else None) if covered else rates[name]
        if key != window:
            window, window_start = key, t
            window_left = rate.cap if rate is not None and rate.cap is not None else _INF
        if dc is not None:
            if dc.day == "rolling":
                dk = (t - entry) // timedelta(hours=24)
            else:
                max_wall = max(max_wall, wall)
                dk = (max_wall - MINUTE * dc.change_min).date()
            if dk != day:
                day, day_left = dk, dc.amount
        elapsed = (t - window_start) // MINUTE
        price = None
        if rate is None:
            price = Decimal(0) if elapsed == 0 else None
        else:
            band = next(b for b in rate.bands if b.from_min <= elapsed and (b.to_min is None or elapsed < b.to_min))
            if (band.step_min and (elapsed - band.from_min) % band.step_min == 0) or \
                    (band.step_min is None and elapsed == band.from_min):
                price = band.price
        if price is not None:
            charge = min(price, window_left, day_left, stay_left)
            total += charge
            window_left -= charge
            day_left -= charge
            stay_left -= charge
        t += MINUTE
    inc = tariff.rounding.increment
    return (total / inc).quantize(Decimal(1), rounding=_ROUND[tariff.rounding.mode]) * inc


def _covers(permit: PermitCover, t: datetime, wall: datetime) -> bool:
    if not permit.valid_from <= t < permit.valid_to:
        return False
    if permit.hours is None:
        return True
    m = wall.hour * 60 + wall.minute
    today, yesterday = WEEKDAYS[wall.weekday()], WEEKDAYS[(wall.weekday() - 1) % 7]
    for h in permit.hours:
        if h.end_min > h.start_min:
            if today in h.days and h.start_min <= m < h.end_min:
                return True
        elif (today in h.days and m >= h.start_min) or (yesterday in h.days and m < h.end_min):
            return True
    return False


# --- properties ---------------------------------------------------------------------------------------

@SLOW_PROPS
@given(tariff=tariffs, stay=stays(whole_minutes=True, max_minutes=2 * 1440), data=st.data())
def test_engine_matches_the_minute_by_minute_reference(tariff, stay, data):
    """Every rule at once, on stays around DST changes in Berlin and New York: the engine's walk
    (segments between boundaries) equals the reference's minute-by-minute walk, to the cent."""
    zone, entry, exit_ = stay
    kw = data.draw(contexts(entry, tariff))
    got = quote(entry, exit_, tariff, zone, **kw).amount
    assert got == reference_amount(entry, exit_, tariff, ZONES[zone], **kw)


@PROPS
@given(tariff=tariffs, stay=stays(), extra=st.integers(0, 3 * 86400 * 10**6), data=st.data())
def test_fee_never_decreases_as_the_stay_gets_longer(tariff, stay, extra, data):
    zone, entry, exit_ = stay
    kw = data.draw(contexts(entry, tariff))
    shorter = quote(entry, exit_, tariff, zone, **kw)
    longer = quote(entry, utc(exit_) + timedelta(microseconds=extra), tariff, zone, **kw)
    assert shorter.amount <= longer.amount


@PROPS
@given(rules=tariff_rules(), stay=stays(), data=st.data())
def test_caps_and_maximum_are_never_exceeded(rules, stay, data):
    """The stay never costs more than its maximum; a stay whose billable time lies inside one
    cap day never costs more than the daily cap; and caps only ever take away (removing
    them never lowers the fee)."""
    tariff = Tariff.from_dict(rules)
    zone, entry, exit_ = stay
    kw = data.draw(contexts(entry, tariff))
    q = quote(entry, exit_, tariff, zone, **kw)
    if tariff.max_per_stay is not None:
        assert q.amount <= tariff.max_per_stay
    dc = tariff.daily_cap
    if dc is not None and _one_cap_day(q, dc, ZONES[zone]):
        assert q.amount <= dc.amount
    uncapped = dict(rules, rates={k: {kk: v for kk, v in r.items() if kk != "cap"} for k, r in rules["rates"].items()})
    uncapped.pop("daily_cap", None)
    uncapped.pop("max_per_stay", None)
    assert q.amount <= quote(entry, exit_, Tariff.from_dict(uncapped), zone, **kw).amount


def _one_cap_day(q, dc, tz) -> bool:
    a, b = q.billed_from, q.billed_to
    if dc.day == "rolling":
        return (b - q.entry) <= timedelta(hours=23)
    # both ends on the same local day counted from the change time, and no DST fold in between
    la, lb = a.astimezone(tz), b.astimezone(tz)
    shift = MINUTE * dc.change_min
    return (la.replace(tzinfo=None) - shift).date() == (lb.replace(tzinfo=None) - shift).date() \
        and la.utcoffset() == lb.utcoffset() and b - a < timedelta(hours=23)


@PROPS
@given(tariff=tariffs, stay=stays(), cuts=st.lists(st.integers(0, 10**6), min_size=1, max_size=3), data=st.data())
def test_splitting_a_stay_at_paid_instants_never_charges_more(tariff, stay, cuts, data):
    """Splitting at a paid instant: the driver pays at instant t1 what ``quote(entry, t1)`` asks,
    keeping ``Paid(total paid, that quote's paid_until)``; possibly pays again at t2 > t1 the
    ``due`` of ``quote(entry, t2, paid=...)``; then exits, paying the exit quote's ``due``.
    The sum of everything paid never exceeds ``quote(entry, exit).amount`` (no payment), and
    an exit within ``paid_until + exit grace`` of the last payment owes nothing."""
    zone, entry, exit_ = stay
    kw = data.draw(contexts(entry, tariff))
    span = utc(exit_) - utc(entry)
    instants = sorted(utc(entry) + span * c // 10**6 for c in cuts)
    paid: Paid | None = None
    total = 0
    for t in instants:
        q = quote(entry, t, tariff, zone, paid=paid, **kw)
        total += q.due_minor
        paid = Paid(total, q.paid_until)
    last = quote(entry, exit_, tariff, zone, paid=paid, **kw)
    total += last.due_minor
    whole = quote(entry, exit_, tariff, zone, **kw)
    assert total <= whole.amount_minor
    if paid.until is not None and exit_ <= paid.until + timedelta(minutes=tariff.exit_grace_min):
        assert last.due_minor == 0


@PROPS
@given(tariff=tariffs, stay=stays(), data=st.data())
def test_paid_until_is_exactly_where_the_fee_rises(tariff, stay, data):
    zone, entry, exit_ = stay
    kw = data.draw(contexts(entry, tariff))
    q = quote(entry, exit_, tariff, zone, **kw)
    if q.paid_until is None:
        far = quote(entry, utc(exit_) + timedelta(days=40), tariff, zone, **kw)
        assert far.amount == q.amount
        return
    assert q.paid_until >= exit_
    assert quote(entry, q.paid_until, tariff, zone, **kw).amount == q.amount
    if q.paid_until < utc(exit_) + LOOKAHEAD:
        assert quote(entry, q.paid_until + timedelta(microseconds=1), tariff, zone, **kw).amount > q.amount


@PROPS
@given(tariff=tariffs, stay=stays(), paid=st.integers(0, 50_000), data=st.data())
def test_breakdown_adds_up_and_money_is_consistent(tariff, stay, paid, data):
    zone, entry, exit_ = stay
    kw = data.draw(contexts(entry, tariff))
    q = quote(entry, exit_, tariff, zone, paid=Paid(paid, None), **kw)
    assert sum((ln.amount for ln in q.lines), Decimal(0)) == q.amount
    assert q.amount == Decimal(q.amount_minor).scaleb(-tariff.exponent)
    assert q.amount % tariff.rounding.increment == 0
    assert q.due_minor == max(0, q.amount_minor - paid)
    assert -q.amount.as_tuple().exponent == tariff.exponent
    json.dumps(q.to_dict())


@PROPS
@given(rules=tariff_rules(time_of_day=False), stay=stays())
def test_duration_only_tariffs_bill_true_elapsed_time_across_dst(rules, stay):
    """Without time-of-day bands or calendar days, a stay costs the same in Berlin, New York
    or UTC: only the elapsed time counts, so a night with a clock change is neither an hour
    short nor an hour long."""
    if rules.get("daily_cap", {}).get("day") == "calendar":
        rules["daily_cap"] = {"amount": rules["daily_cap"]["amount"], "day": "rolling"}
    tariff = Tariff.from_dict(rules)
    zone, entry, exit_ = stay
    here = quote(entry, exit_, tariff, zone)
    assert here.amount == quote(entry, exit_, tariff, "UTC").amount
    assert here == quote(entry.astimezone(UTC), exit_.astimezone(UTC), tariff, zone)


@PROPS
@given(rules=tariff_rules())
def test_json_round_trip(rules):
    tariff = Tariff.from_dict(rules)
    again = Tariff.from_dict(json.loads(json.dumps(tariff.to_dict())))
    assert again == tariff and again.to_dict() == tariff.to_dict()


# --- DST days, explicitly --------------------------------------------------------------------------

HOURLY = Tariff.from_dict({"currency": "EUR", "rates": {"h": {"bands": [
    {"from_min": 0, "to_min": None, "step_min": 60, "price": "1.00"}]}}, "week": {"mon-sun": "h"}})
DAY_NIGHT = Tariff.from_dict({
    "currency": "EUR",
    "rates": {"day": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "2.00"}]},
              "night": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "1.00"}]}},
    "week": {"mon-sun": [{"from": "00:00", "to": "08:00", "rate": "night"},
                         {"from": "08:00", "to": "20:00", "rate": "day"},
                         {"from": "20:00", "to": "24:00", "rate": "night"}]},
    "daily_cap": {"amount": "100.00", "day": "calendar"},
})


def _wall(zone, *args):
    return datetime(*args, tzinfo=ZONES[zone])


@given(zone=st.sampled_from(sorted(ZONES)))
@settings(max_examples=10, deadline=None)
def test_dst_days_bill_their_true_elapsed_time(zone):
    """Midnight to 06:00 local is 5 h on the spring-forward day and 7 h on the fall-back day; a
    20:00-08:00 night is 11 h and 13 h; the calendar day is 23 h and 25 h."""
    spring, fall = (t.astimezone(ZONES[zone]).date() for t in TRANSITIONS[zone])
    for d, hours, night, day_len in ((spring, 5, 11, 23), (fall, 7, 13, 25)):
        start = _wall(zone, d.year, d.month, d.day)
        assert quote(start, _wall(zone, d.year, d.month, d.day, 6), HOURLY, zone).amount == hours
        eve = _wall(zone, *(d - timedelta(days=1)).timetuple()[:3], 20)
        q = quote(eve, _wall(zone, d.year, d.month, d.day, 8), DAY_NIGHT, zone)
        assert [ln.units for ln in q.lines] == [night] and q.amount == night
        nxt = d + timedelta(days=1)
        q = quote(start, _wall(zone, nxt.year, nxt.month, nxt.day), DAY_NIGHT, zone)
        assert sum(ln.units for ln in q.lines if ln.kind == "charge") == day_len
        assert q.amount == 2 * 12 + (day_len - 12)
        assert quote(start, _wall(zone, nxt.year, nxt.month, nxt.day), HOURLY, zone).amount == day_len
