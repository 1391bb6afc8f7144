"""Revenue reports for finance: totals, splits, reconciliation, occupancy; JSON and CSV.

Everything is aggregated by the database (GROUP BY, window functions); Python
only handles the few aggregated rows. Periods are days, weeks (Monday first) and
months of the *site's* calendar: the range ``first..last`` (inclusive local dates)
becomes the UTC interval ``[start, end)`` between two local midnights, so a 23 h
or 25 h DST day holds exactly its own payments.

Revenue reads the daily roll-up ``revenue_day`` (payments summed per local day,
kind, method, lane and tariff; ``revenue_rollup.py`` keeps it in step and checks it),
and folds the days into weeks or months here. Reconciliation and occupancy read the
stays of the range.

Amounts are signed as stored in ``payment``: takings > 0, refunds < 0, adjustments
positive for a credit given to a driver (a waived fee), negative for an extra
charge. ``net_takings`` is cash: takings plus refunds; adjustments are shown apart.
A void (a payment recorded by mistake, ``payments.void``) is no takings: it takes its
payment out of the count and the sum, on the local day the void was made.
"""
from __future__ import annotations

import sqlite3

import csv
import io
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Optional, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from ..records.errors import InvalidInput
from ..records.models import Lane, ParkingSession, Payment, RevenueDay, Site, TariffVersion, UnpaidBalance, User
from .tariff_model import currency_exponent

GROUPINGS = ("day", "week", "month", "lane", "method", "tariff")
TIME_GROUPINGS = ("day", "week", "month")
SPLITS = ("method", "lane", "tariff")
DEFAULT_MAX_DAYS = 400
_UTC = timezone.utc
METHOD_LABELS = {"cash": "Cash", "card": "Card", "app": "App", "mobile": "Mobile", "validation": "Validation",
                 "permit_fee": "Permit fee", "adjustment": "Adjustment"}


# --- the period -------------------------------------------------------------------------------

def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local calendar day begins.

    Where midnight is skipped (a DST gap) the day begins at the transition; where it
    repeats, at the second midnight, matching wall-clock bucketing on PostgreSQL.
    """
    naive = datetime(day.year, day.month, day.day)
    return max(naive.replace(tzinfo=zone, fold=0).astimezone(_UTC),
               naive.replace(tzinfo=zone, fold=1).astimezone(_UTC))


@dataclass(frozen=True)
class Period:
    """A report range: local dates ``first..last`` (inclusive) and their UTC bounds ``[start, end)``."""

    site: Site
    first: date
    last: date
    start: datetime
    end: datetime

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.site.timezone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def period(site: Site, first: date, last: date, *, max_days: int = DEFAULT_MAX_DAYS) -> Period:
    """Validate a range (``first`` not after ``last``, at most ``max_days`` days) for ``site``."""
    if not isinstance(first, date) or not isinstance(last, date) or isinstance(first, datetime) \
            or isinstance(last, datetime):
        raise InvalidInput("a report range is two calendar dates")
    if first > last:
        raise InvalidInput(f"'from' ({first.isoformat()}) is after 'to' ({last.isoformat()})")
    days = (last - first).days + 1
    if days > max_days:
        raise InvalidInput(f"the range covers {days} days; at most {max_days} are allowed",
                           days=days, max_days=max_days)
    zone = ZoneInfo(site.timezone)
    return Period(site, first, last, local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone))


@dataclass(frozen=True)
class Bucket:
    key: date  # natural start: the day, the week's Monday, the month's first
    first: date  # clipped to the range
    last: date


def buckets(p: Period, unit: str) -> list[Bucket]:
    """The range cut into local days, Monday weeks or months (edges clipped to the range)."""
    out: list[Bucket] = []
    d = p.first
    while d <= p.last:
        if unit == "day":
            key, nxt = d, d + timedelta(days=1)
        elif unit == "week":
            key = d - timedelta(days=d.weekday())
            nxt = key + timedelta(days=7)
        elif unit == "month":
            key = d.replace(day=1)
            nxt = (key + timedelta(days=32)).replace(day=1)
        else:
            raise InvalidInput(f"not a time grouping: {unit!r}")
        last = min(nxt - timedelta(days=1), p.last)
        out.append(Bucket(key, d, last))
        d = nxt
    return out


# --- revenue ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Totals:
    """Counts and signed sums (minor units) of one group of payment rows."""

    payments: int = 0
    takings_minor: int = 0
    refunds: int = 0
    refunds_minor: int = 0
    adjustments: int = 0
    adjustments_minor: int = 0

    @property
    def net_takings_minor(self) -> int:
        return self.takings_minor + self.refunds_minor

    def __add__(self, other: "Totals") -> "Totals":
        return Totals(*(a + b for a, b in zip(self._values(), other._values())))

    def _values(self) -> tuple[int, ...]:
        return (self.payments, self.takings_minor, self.refunds, self.refunds_minor, self.adjustments,
                self.adjustments_minor)


@dataclass(frozen=True)
class Row:
    """One group: a period (``period_first``/``period_last`` set) or a lane, method or tariff."""

    group: Optional[str]
    label: str
    totals: Totals
    period_first: Optional[date] = None
    period_last: Optional[date] = None


@dataclass(frozen=True)
class Revenue:
    period: Period
    group_by: str
    rows: tuple[Row, ...]
    totals: Totals
    splits: dict[str, tuple[Row, ...]] = field(default_factory=dict)


def _measures(kind: Any = Payment.kind, amount: Any = Payment.amount_minor) -> list[Any]:
    """Count and sum of each kind of movement: the six figures of :class:`Totals`."""
    out: list[Any] = []
    for k in ("payment", "refund", "adjustment"):
        if k == "payment":  # a void cancels a payment: one payment fewer, its amount netted out
            out.append(func.count(case((kind == k, 1))) - func.count(case((kind == "void", 1))))
            out.append(func.coalesce(func.sum(case((kind.in_(("payment", "void")), amount))), 0))
            continue
        out.append(func.count(case((kind == k, 1))))
        out.append(func.coalesce(func.sum(case((kind == k, amount))), 0))
    return out


def _totals(values_: Sequence[Any]) -> Totals:
    return Totals(*(int(v or 0) for v in values_))


def _no_jit(session: Session) -> None:
    """PostgreSQL's JIT spends 0.3-0.6 s compiling these short aggregations (their cost
    estimates look large); it is switched off for the report's own transaction only."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def _in_range(p: Period) -> Any:
    return and_(Payment.site_id == p.site.id, Payment.created_at >= p.start, Payment.created_at < p.end)


_ROLLUP_KEYS = {"method": RevenueDay.method, "lane": RevenueDay.lane_key, "tariff": RevenueDay.tariff_key}


def _scan(session: Session, p: Period, cuts: Sequence[Bucket], keys: Sequence[str]
          ) -> list[tuple[Optional[date], tuple[Any, ...], Totals]]:
    """The range's money per time bucket (``cuts``; none: one bucket) and split ``keys``:
    (bucket key, key values, totals) per group, from the daily roll-up.

    The roll-up (``records/revenue_rollup.py``) holds the sums per local day, kind, method, lane
    and tariff, so a year reads a few thousand rows rather than every payment; buckets
    and splits are folded here. Lane and tariff 0 mean none.
    """
    r = RevenueDay
    key_cols = [_ROLLUP_KEYS[k] for k in keys]
    stmt = (select(r.day, r.kind, *key_cols, func.sum(r.movements), func.sum(r.amount_minor))
            .where(r.site_id == p.site.id, r.day >= p.first, r.day <= p.last)
            .group_by(r.day, r.kind, *key_cols))
    starts = [b.first for b in cuts]
    slot = {"payment": 0, "refund": 2, "adjustment": 4, "void": 0}  # a void nets out the payment it cancels
    grouped: dict[tuple[Optional[date], tuple[Any, ...]], list[int]] = {}
    for day, kind, *rest in session.execute(stmt):
        if not rest[-2]:
            continue   # a no-lane row whose payments all moved to an exit lane
        values_ = tuple((v or None) if k != "method" else v for k, v in zip(keys, rest))
        bucket = cuts[bisect_right(starts, day) - 1].key if cuts else None
        sums = grouped.setdefault((bucket, values_), [0] * 6)
        sums[slot[kind]] += -int(rest[-2]) if kind == "void" else int(rest[-2])
        sums[slot[kind] + 1] += int(rest[-1])
    return [(bucket, values_, Totals(*sums)) for (bucket, values_), sums in grouped.items()]


def _time_rows(cuts: Sequence[Bucket], found: dict[date, Totals]) -> tuple[Row, ...]:
    return tuple(Row(b.key.isoformat(), b.key.isoformat(), found.get(b.key, Totals()), b.first, b.last)
                 for b in cuts)


def _split_rows(session: Session, key: str, grouped: dict[Any, Totals]) -> tuple[Row, ...]:
    """Rows of one split, labelled (lane code and name, tariff code and version, method)."""
    if key == "method":
        return tuple(Row(m, METHOD_LABELS.get(m, m), t) for m, t in sorted(grouped.items(), key=lambda mt: mt[0]))
    ids = [i for i in grouped if i is not None]
    if key == "lane":
        names = {lid: (code, name) for lid, code, name in
                 session.execute(select(Lane.id, Lane.code, Lane.name).where(Lane.id.in_(ids)))} if ids else {}
        missing = "No lane"
    else:
        names = {vid: (f"{code} v{version}", name) for vid, code, version, name in session.execute(
            select(TariffVersion.id, TariffVersion.code, TariffVersion.version, TariffVersion.name)
            .where(TariffVersion.id.in_(ids)))} if ids else {}
        missing = "No tariff"
    rows = [Row(names[i][0], names[i][1], t) if i is not None else Row(None, missing, t) for i, t in grouped.items()]
    return tuple(sorted(rows, key=lambda r: (r.group is None, r.group or "")))


def _sum(rows: Iterable[Row]) -> Totals:
    total = Totals()
    for r in rows:
        total = total + r.totals
    return total


def revenue(session: Session, site: Site, first: date, last: date, *, group_by: str = "day",
            splits: Sequence[str] = ("method", "lane"), max_days: int = DEFAULT_MAX_DAYS) -> Revenue:
    """Takings, refunds and adjustments per ``group_by`` over local dates ``first..last``,
    with whole-range ``splits`` (by method, lane, tariff)."""
    if group_by not in GROUPINGS:
        raise InvalidInput(f"group_by must be one of {', '.join(GROUPINGS)}; got {group_by!r}")
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise InvalidInput(f"unknown split(s) {bad}; use {', '.join(SPLITS)}")
    p = period(site, first, last, max_days=max_days)
    _no_jit(session)
    unit = group_by if group_by in TIME_GROUPINGS else None
    keys = list(dict.fromkeys(([] if unit else [group_by]) + list(splits)))
    by_time: dict[date, Totals] = {}
    by_key: dict[str, dict[Any, Totals]] = {k: {} for k in keys}
    cuts = buckets(p, unit) if unit else []
    for bucket, values_, totals in _scan(session, p, cuts, keys):
        if bucket is not None:
            by_time[bucket] = by_time.get(bucket, Totals()) + totals
        for key, value in zip(keys, values_):
            by_key[key][value] = by_key[key].get(value, Totals()) + totals
    split_rows = {k: _split_rows(session, k, by_key[k]) for k in keys}
    rows = _time_rows(cuts, by_time) if unit else split_rows[group_by]
    return Revenue(p, group_by, rows, _sum(rows), {k: split_rows[k] for k in splits})


# --- reconciliation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Balance:
    session_id: int
    plate: str
    exited_at: datetime
    fee_minor: int
    credits_minor: int
    cash_minor: int

    @property
    def balance_minor(self) -> int:
        return self.fee_minor - self.credits_minor - self.cash_minor


@dataclass(frozen=True)
class Reconciliation:
    """Fees billed at exit for stays that left in the range, against money.

    ``paid_*``: what those stays paid and were credited, whenever; ``collected``:
    cash taken in the range, whatever stay it was for. ``open_balance``: stays
    still owing (fee - credits - cash > 0); ``overpaid``: the opposite.
    """

    stays_exited: int
    billed_minor: int
    credits_minor: int
    paid_minor: int
    open_balance_minor: int
    open_balance_stays: int
    overpaid_minor: int
    overpaid_stays: int
    collected: Totals
    top_open_balances: tuple[Balance, ...]
    unpaid_exits: tuple["UnpaidExit", ...] = ()
    written_off_minor: int = 0
    written_off_stays: int = 0


@dataclass(frozen=True)
class UnpaidExit:
    """A car let out owing money (``unpaid_balance``): who approved it and why, what is still
    owed, and its write-off (who approved that, and why)."""

    balance_id: int
    session_id: int
    plate: str
    exited_at: datetime
    cause: str
    reason: str
    owed_minor: int  # due when the car left
    remaining_minor: int  # billed less everything paid, refunded or credited since
    approved_by: Optional[str]  # None: the emergency mode, switched on by nobody known
    written_off_minor: int
    written_off_by: Optional[str]
    write_off_reason: Optional[str]
    written_off_at: Optional[datetime]

    @property
    def status(self) -> str:
        if self.written_off_at is not None:
            return "written off"
        return "open" if self.remaining_minor > 0 else "settled"


MAX_UNPAID_EXITS = 200


def unpaid_exits(session: Session, p: Period, *, limit: int = MAX_UNPAID_EXITS) -> tuple[UnpaidExit, ...]:
    """The cars that left owing money in ``p`` (newest first), each with its approver and write-off."""
    s, u = ParkingSession, UnpaidBalance
    approver, writer = User.__table__.alias("approver"), User.__table__.alias("writer")
    settled = func.coalesce(select(func.sum(Payment.amount_minor)).where(Payment.session_id == s.id)
                            .correlate(s).scalar_subquery(), 0)
    written = func.coalesce(select(Payment.amount_minor).where(Payment.id == u.write_off_payment_id)
                            .correlate(u).scalar_subquery(), 0)

    def name(t: Any) -> Any:
        return func.coalesce(func.nullif(t.c.display_name, ""), t.c.username)

    rows = session.execute(
        select(u.id, s.id, s.plate, s.exited_at, u.cause, u.reason, u.amount_minor,
               func.coalesce(s.fee_minor, 0) - settled, name(approver), written, name(writer), u.write_off_reason,
               u.written_off_at)
        .join(s, s.id == u.session_id)
        .outerjoin(approver, approver.c.id == u.approved_by)
        .outerjoin(writer, writer.c.id == u.written_off_by)
        .where(u.site_id == p.site.id, s.exited_at >= p.start, s.exited_at < p.end)
        .order_by(s.exited_at.desc(), u.id.desc()).limit(limit)
    ).all()
    return tuple(UnpaidExit(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]), int(r[7]), r[8], int(r[9]),
                            r[10], r[11], r[12]) for r in rows)


def reconciliation(session: Session, p: Period, *, top: int = 10,
                   collected: Optional[Totals] = None) -> Reconciliation:
    """Billed versus paid for the stays that exited in ``p``; the largest open balances."""
    _no_jit(session)
    s = ParkingSession

    def paid(adjustments: bool) -> Any:
        kind = Payment.kind == "adjustment" if adjustments else Payment.kind != "adjustment"
        return func.coalesce(select(func.sum(Payment.amount_minor)).where(Payment.session_id == s.id, kind)
                             .correlate(s).scalar_subquery(), 0)

    # Per stay, its payments are found through ix_payment_session (a few index probes per
    # stay), never by hashing the whole payment table; MATERIALIZED keeps PostgreSQL from
    # repeating those probes for every window aggregate below.
    per_stay = (
        select(s.id.label("id"), s.plate.label("plate"), s.exited_at.label("exited_at"),
               func.coalesce(s.fee_minor, 0).label("fee"), paid(True).label("credits"), paid(False).label("cash"))
        .where(s.site_id == p.site.id, s.exited_at >= p.start, s.exited_at < p.end)
    ).cte("per_stay").prefix_with("MATERIALIZED", dialect="postgresql")
    if sqlite3.sqlite_version_info >= (3, 35):  # SQLite learned MATERIALIZED in 3.35
        per_stay = per_stay.prefix_with("MATERIALIZED", dialect="sqlite")
    c = per_stay.c
    balance = (c.fee - c.credits - c.cash).label("balance")
    # One pass: whole-range sums as window aggregates on the few top rows.
    rows = session.execute(
        select(c.id, c.plate, c.exited_at, c.fee, c.credits, c.cash, balance,
               func.count().over(), func.sum(c.fee).over(),
               func.sum(c.credits).over(), func.sum(c.cash).over(),
               func.sum(case((balance > 0, balance))).over(),
               func.count(case((balance > 0, 1))).over(),
               func.sum(case((balance < 0, -balance))).over(),
               func.count(case((balance < 0, 1))).over())
        .order_by(balance.desc(), c.id).limit(max(top, 1))
    ).all()
    summary = rows[0][7:] if rows else (0,) * 8
    top_rows = [r[:6] for r in rows[:top] if r[6] > 0]
    if collected is None:
        collected = _totals(session.execute(select(*_measures()).where(_in_range(p))).one())
    n, billed, credits, cash, open_sum, open_n, over_sum, over_n = (int(v or 0) for v in summary)
    unpaid = unpaid_exits(session, p)
    return Reconciliation(
        n, billed, credits, cash, open_sum, open_n, over_sum, over_n, collected,
        tuple(Balance(int(i), pl, x, int(f), int(cr), int(ca)) for i, pl, x, f, cr, ca in top_rows),
        unpaid, sum(x.written_off_minor for x in unpaid), sum(1 for x in unpaid if x.written_off_at is not None),
    )


# --- occupancy --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Occupancy:
    """Stays entering and leaving in the range, how long they stayed, and the most inside at once.

    Stays marked expired (no exit was ever seen) are left out: when they left is unknown.
    """

    stays_entered: int
    stays_exited: int
    average_stay_s: Optional[int]
    occupancy_at_start: int
    peak: int
    peak_at: datetime
    capacity: Optional[int]
    turnover: Optional[Decimal]  # entries per space per day


_PRESENT = ("open", "closed", "void")  # statuses whose time inside is known


def occupancy(session: Session, p: Period) -> Occupancy:
    """Counts, average duration, and peak occupancy from a running sum over entry/exit events."""
    _no_jit(session)
    s = ParkingSession
    site_id = p.site.id
    pg = session.get_bind().dialect.name == "postgresql"
    seconds = (func.extract("epoch", s.exited_at - s.entered_at) if pg
               else (func.julianday(s.exited_at) - func.julianday(s.entered_at)) * 86400.0)
    exited, avg_s = session.execute(
        select(func.count(), func.avg(seconds)).where(s.site_id == site_id, s.exited_at >= p.start, s.exited_at < p.end)
    ).one()
    entered = session.scalar(select(func.count()).where(s.site_id == site_id, s.status.in_(_PRESENT),
                                                        s.entered_at >= p.start, s.entered_at < p.end)) or 0
    # Inside at the start: entered before it and not gone by then. Those still open now, plus
    # those that left after the start. Both are short index ranges for recent periods, instead
    # of counting the site's whole history.
    still_open = session.scalar(select(func.count()).where(s.site_id == site_id, s.status == "open",
                                                           s.entered_at < p.start)) or 0
    left_later = session.scalar(select(func.count()).where(s.site_id == site_id, s.status.in_(_PRESENT),
                                                           s.exited_at >= p.start, s.entered_at < p.start)) or 0
    at_start = int(still_open) + int(left_later)
    events = union_all(
        select(s.entered_at.label("t"), literal_column("1").label("d"))
        .where(s.site_id == site_id, s.status.in_(_PRESENT), s.entered_at >= p.start, s.entered_at < p.end),
        select(s.exited_at.label("t"), literal_column("-1").label("d"))
        .where(s.site_id == site_id, s.exited_at >= p.start, s.exited_at < p.end),
    ).subquery("ev")
    # exits sort before entries at the same instant, so a swap is never counted twice
    running = select(events.c.t, func.sum(events.c.d).over(order_by=(events.c.t, events.c.d), rows=(None, 0))
                     .label("occ")).subquery("run")
    best = session.execute(select(running.c.occ, running.c.t).order_by(running.c.occ.desc(), running.c.t)
                           .limit(1)).first()
    peak, peak_at = at_start, p.start
    if best is not None and int(best[0]) > 0:
        peak, peak_at = at_start + int(best[0]), best[1]
    capacity = p.site.capacity
    turnover = None
    if capacity:
        turnover = (Decimal(int(entered)) / Decimal(capacity * p.days)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return Occupancy(int(entered), int(exited or 0), None if avg_s is None else int(round(float(avg_s))),
                     at_start, peak, peak_at, capacity, turnover)


# --- the whole report -------------------------------------------------------------------------

@dataclass(frozen=True)
class RevenueReport:
    revenue: Revenue
    reconciliation: Optional[Reconciliation]
    occupancy: Optional[Occupancy]

    @property
    def site(self) -> Site:
        return self.revenue.period.site

    def money(self, minor: int) -> Decimal:
        """Minor units as a Decimal in major units of the site's currency (never a float)."""
        return Decimal(minor).scaleb(-currency_exponent(self.site.currency))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, matching the ``Revenue`` schema of the OpenAPI document."""
        rv = self.revenue
        p = rv.period
        out: dict[str, Any] = {
            "site": self.site.code, "site_name": self.site.name, "currency": self.site.currency,
            "timezone": self.site.timezone, "from": p.first.isoformat(), "to": p.last.isoformat(),
            "start": _iso(p.start), "end": _iso(p.end), "group_by": rv.group_by,
            "rows": [self._row(r) for r in rv.rows],
            "totals": self._totals(rv.totals),
            "splits": {k: [self._row(r) for r in rows] for k, rows in rv.splits.items()},
        }
        if self.reconciliation is not None:
            rc = self.reconciliation
            out["reconciliation"] = {
                "stays_exited": rc.stays_exited, "billed": self._m(rc.billed_minor),
                "credits": self._m(rc.credits_minor), "paid": self._m(rc.paid_minor),
                "open_balance": self._m(rc.open_balance_minor), "open_balance_stays": rc.open_balance_stays,
                "overpaid": self._m(rc.overpaid_minor), "overpaid_stays": rc.overpaid_stays,
                "collected": self._totals(rc.collected),
                "top_open_balances": [
                    {"session_id": b.session_id, "plate": b.plate, "exited_at": _iso(b.exited_at),
                     "fee": self._m(b.fee_minor), "credits": self._m(b.credits_minor), "paid": self._m(b.cash_minor),
                     "balance": self._m(b.balance_minor)} for b in rc.top_open_balances],
                "written_off": self._m(rc.written_off_minor), "written_off_stays": rc.written_off_stays,
                "unpaid_exits": [
                    {"session_id": x.session_id, "plate": x.plate, "exited_at": _iso(x.exited_at), "cause": x.cause,
                     "reason": x.reason, "approved_by": x.approved_by, "owed": self._m(x.owed_minor),
                     "remaining": self._m(x.remaining_minor), "status": x.status,
                     "written_off": self._m(x.written_off_minor), "written_off_by": x.written_off_by,
                     "write_off_reason": x.write_off_reason,
                     "written_off_at": _iso(x.written_off_at) if x.written_off_at else None}
                    for x in rc.unpaid_exits],
            }
        if self.occupancy is not None:
            oc = self.occupancy
            out["occupancy"] = {
                "stays_entered": oc.stays_entered, "stays_exited": oc.stays_exited,
                "average_stay_minutes": None if oc.average_stay_s is None
                else str((Decimal(oc.average_stay_s) / 60).quantize(Decimal("0.1"), ROUND_HALF_UP)),
                "occupancy_at_start": oc.occupancy_at_start, "peak": oc.peak, "peak_at": _iso(oc.peak_at),
                "capacity": oc.capacity, "turnover": None if oc.turnover is None else str(oc.turnover),
            }
        return out

    def _m(self, minor: int) -> str:
        return format(self.money(minor), "f")

    def _totals(self, t: Totals) -> dict[str, Any]:
        return {"payments": t.payments, "takings": self._m(t.takings_minor), "refunds": t.refunds,
                "refunded": self._m(t.refunds_minor), "adjustments": t.adjustments,
                "adjusted": self._m(t.adjustments_minor), "net_takings": self._m(t.net_takings_minor)}

    def _row(self, r: Row) -> dict[str, Any]:
        return {"group": r.group, "label": r.label,
                "period_start": r.period_first.isoformat() if r.period_first else None,
                "period_end": r.period_last.isoformat() if r.period_last else None,
                **self._totals(r.totals)}


def report(session: Session, site: Site, first: date, last: date, *, group_by: str = "day",
           splits: Sequence[str] = ("method", "lane"), max_days: int = DEFAULT_MAX_DAYS,
           top_balances: int = 10) -> RevenueReport:
    """Revenue grouped by ``group_by`` with splits, reconciliation and occupancy for one range."""
    rv = revenue(session, site, first, last, group_by=group_by, splits=splits, max_days=max_days)
    return RevenueReport(rv, reconciliation(session, rv.period, top=top_balances, collected=rv.totals),
                         occupancy(session, rv.period))


CSV_COLUMNS = ("site", "currency", "section", "group", "label", "period_start", "period_end", "payments",
               "takings", "refunds", "refunded", "adjustments", "adjusted", "net_takings")


def to_csv(report: RevenueReport) -> str:
    """The revenue rows as one table a spreadsheet opens cleanly.

    Header row; ISO dates; amounts in major units with a dot; the currency on every
    row. ``section`` says what a row is: the ``group_by`` rows, then ``total``, then
    one block per split (``method``, ``lane``...). Text that a spreadsheet would run
    as a formula is prefixed with an apostrophe.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    rv = report.revenue
    site, cur = report.site.code, report.site.currency

    def line(section: str, r: Optional[Row], t: Totals) -> list[Any]:
        d = report._totals(t)
        return [_cell(site), cur, section, _cell(r.group if r else ""), _cell(r.label if r else "Total"),
                r.period_first.isoformat() if r and r.period_first else "",
                r.period_last.isoformat() if r and r.period_last else "",
                d["payments"], d["takings"], d["refunds"], d["refunded"], d["adjustments"], d["adjusted"],
                d["net_takings"]]

    for r in rv.rows:
        w.writerow(line(rv.group_by, r, r.totals))
    w.writerow(line("total", None, rv.totals))
    for name, rows in rv.splits.items():
        if name == rv.group_by:
            continue
        for r in rows:
            w.writerow(line(name, r, r.totals))
    return buf.getvalue()


def _cell(value: Optional[str]) -> str:
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _iso(dt: Optional[datetime]) -> Optional[str]:
    return None if dt is None else dt.astimezone(_UTC).isoformat()
