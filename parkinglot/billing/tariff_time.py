"""Instants for the fee walk: integer microseconds since the epoch, and local wall-clock boundaries.

A stay's billed duration is true elapsed time (a difference of UTC instants), while a
time-of-day boundary ("night from 20:00") follows the site's wall clock. Both meet here:
``local_instant_us`` turns "local date + minute of the day" into the UTC instant at which
the wall clock first reaches it, so 23 h and 25 h days come out exact.

Results are cached (they are pure functions of the zone's rules); ``clear_caches`` exists
for benchmarks and tests that want a cold start.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Collection

from .tariff_model import DAY_MIN, INF, US_PER_MIN

if TYPE_CHECKING:
    from .tariff_model import _Compiled

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_US = timedelta(microseconds=1)
US_PER_DAY = 86_400_000_000
_CACHE_LIMIT = 50_000

_local_cache: dict[tuple[Any, int, int], int] = {}
_plan_cache: dict[tuple[Any, Any, int, bool], Any] = {}
_pieces_cache: dict[tuple[Any, int], Any] = {}


def to_us(dt: datetime) -> int:
    """Aware datetime -> microseconds since the epoch (exact, no floats)."""
    return (dt - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    """Microseconds since the epoch -> aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def local_ordinal(us: int, tz: tzinfo) -> int:
    """Proleptic Gregorian ordinal of the local date at an instant."""
    return (EPOCH + timedelta(microseconds=us)).astimezone(tz).toordinal()


def _wall(us: int, tz: tzinfo) -> datetime:
    return (EPOCH + timedelta(microseconds=us)).astimezone(tz).replace(tzinfo=None)


def local_instant_us(tz: tzinfo, ordinal: int, minute: int) -> int:
    """The first instant at which the wall clock in ``tz`` shows ``minute`` on local day ``ordinal``.

    An ambiguous time (clocks going back) is its first occurrence. A time the clocks skip
    (clocks going forward, e.g. 02:30 in Berlin on the last Sunday of March) takes
    effect at the transition, when the wall clock jumps past it. ``minute`` may be 1440,
    the end of the day (= 00:00 of the next day).
    """
    key = (tz, ordinal, minute)
    got = _local_cache.get(key)
    if got is not None:
        return got
    if minute >= DAY_MIN:
        ordinal, minute = ordinal + minute // DAY_MIN, minute % DAY_MIN
    naive = datetime.fromordinal(ordinal).replace(hour=minute // 60, minute=minute % 60)
    u0 = to_us(naive.replace(tzinfo=tz))
    if _wall(u0, tz) != naive:  # inside a gap: find the transition by bisection (rare, cached)
        u1 = to_us(naive.replace(tzinfo=tz, fold=1))
        lo, hi = min(u0, u1), max(u0, u1)
        while lo < hi:
            mid = (lo + hi) // 2
            if _wall(mid, tz) >= naive:
                hi = mid
            else:
                lo = mid + 1
        u0 = lo
    if len(_local_cache) >= _CACHE_LIMIT:
        _local_cache.clear()
    _local_cache[key] = u0
    return u0


def _offset_us(us: int, tz: tzinfo) -> int:
    return (EPOCH + timedelta(microseconds=us)).astimezone(tz).utcoffset() // ONE_US


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _day_pieces(tz: tzinfo, ordinal: int) -> tuple[tuple[int, int, int], ...]:
    key = (tz, ordinal)
    got = _pieces_cache.get(key)
    if got is None:
        got = _compute_day_pieces(tz, ordinal)
        if len(_pieces_cache) >= _CACHE_LIMIT:
            _pieces_cache.clear()
        _pieces_cache[key] = got
    return got


def _compute_day_pieces(tz: tzinfo, ordinal: int) -> tuple[tuple[int, int, int], ...]:
    """Local day ``ordinal`` as UTC pieces ``(start, end, wall_minus_utc)`` of constant offset.

    The day runs from the first instant the wall clock shows its 00:00 to the first instant it
    shows the next day's 00:00. A DST change splits it in two pieces (one change a day at most).
    """
    a = local_instant_us(tz, ordinal, 0)
    b = local_instant_us(tz, ordinal + 1, 0)
    off_a = _offset_us(a, tz)
    off_b = _offset_us(b - 1, tz)
    if off_a == off_b:
        return ((a, b, off_a),)
    lo, hi = a + 1, b - 1  # the first instant with the new offset
    while lo < hi:
        mid = (lo + hi) // 2
        if _offset_us(mid, tz) == off_a:
            lo = mid + 1
        else:
            hi = mid
    return ((a, lo, off_a), (lo, b, off_b))


def wall_intervals(tz: tzinfo, ordinal: int, start_min: int, end_min: int) -> list[tuple[int, int]]:
    """UTC intervals during which the wall clock shows local day ``ordinal`` between the two minutes.

    On a fall-back day a stretch inside the repeated hour is shown twice, so it yields two
    intervals; on a spring-forward day a skipped stretch yields none.
    """
    midnight = (ordinal - _EPOCH_ORDINAL) * US_PER_DAY  # local midnight on the wall-clock axis
    lo_wall = midnight + start_min * US_PER_MIN
    hi_wall = midnight + end_min * US_PER_MIN
    out = []
    for pa, pb, off in _day_pieces(tz, ordinal):
        x = lo_wall - off
        y = hi_wall - off
        if x < pa:
            x = pa
        if y > pb:
            y = pb
        if x < y:
            out.append((x, y))
    return out


def day_plan(c: "_Compiled", tz: tzinfo, ordinal: int, holiday: bool) -> tuple[tuple[tuple[int, int], ...], int]:
    """A local day's rate segments as ``((start_us, rate_index), ...)`` and the day's end instant.

    The rate at an instant is the one the schedule gives for the wall-clock time shown then,
    so on DST days the windows are exactly as long as the wall clock says (a 20:00-08:00
    night is 11 h or 13 h).
    """
    key = (c, tz, ordinal, holiday)
    plan = _plan_cache.get(key)
    if plan is None:
        segs = c.day_segments[7 if holiday else (ordinal + 6) % 7]
        found: list[tuple[int, int, int]] = []
        for k, (m, ri) in enumerate(segs):
            m_end = segs[k + 1][0] if k + 1 < len(segs) else DAY_MIN
            for x, y in wall_intervals(tz, ordinal, m, m_end):
                found.append((x, y, ri))
        found.sort()
        day_start = local_instant_us(tz, ordinal, 0)
        out: list[tuple[int, int]] = []
        for x, _, ri in found:  # contiguous by construction; a stray hole keeps the previous rate
            if not out or out[-1][1] != ri:
                out.append((x if out else day_start, ri))
        plan = (tuple(out), local_instant_us(tz, ordinal + 1, 0))
        if len(_plan_cache) >= _CACHE_LIMIT:
            _plan_cache.clear()
        _plan_cache[key] = plan
    return plan


def schedule_windows(c: "_Compiled", tz: tzinfo, start: int, horizon: int, holidays: Collection[date]):
    """Yield ``(window_start, window_end, rate_index, False)``: maximal runs of one rate from ``start`` on
    (the ``False``: not a permit's window).

    The last window yielded ends at ``INF`` once the walk passes ``horizon`` (nothing after
    it is needed).
    """
    use_hol = c.holiday_differs and bool(holidays)
    o = local_ordinal(start, tz) if use_hol or c.single_rate is None else 0
    if use_hol and c.single_rate is not None:  # one rate all week: only a holiday in reach matters
        first = date.fromordinal(o)
        last = date.fromordinal(o + 2 + (horizon - start) // US_PER_DAY)
        use_hol = any(first <= d <= last for d in holidays)
    if c.single_rate is not None and not use_hol:
        yield start, INF, c.single_rate, False
        return
    segs, end = day_plan(c, tz, o, use_hol and date.fromordinal(o) in holidays)
    cur = segs[0][1]
    i = 0
    for k, (s, r) in enumerate(segs):
        if s <= start:
            cur, i = r, k + 1
    ws = start
    while True:
        for s, r in segs[i:] if i else segs:
            if r != cur:
                if s > ws:
                    yield ws, s, cur, False
                    ws = s
                cur = r
        if end >= horizon:
            yield ws, INF, cur, False
            return
        o += 1
        segs, end = day_plan(c, tz, o, use_hol and date.fromordinal(o) in holidays)
        i = 0


def clear_caches() -> None:
    """Forget every cached local instant and day plan (benchmarks: cold-start figures)."""
    _local_cache.clear()
    _plan_cache.clear()
    _pieces_cache.clear()
