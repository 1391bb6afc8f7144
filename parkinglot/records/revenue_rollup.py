"""The daily revenue roll-up (``revenue_day``): kept in step with ``payment``, checked, rebuilt.

A year of a busy site is half a million payments; summing them for every report
page took ~0.45 s. The roll-up holds one row per site, *local* day, kind, method,
credited lane and tariff, so the same report reads a few thousand rows.

It is derived data and never the evidence: payments stay the record. Three paths
keep it true, all inside the transaction that writes the payment or closes the stay,
so a rollback undoes both:

- :func:`add_payment` when a money movement is recorded (``payments._insert``);
- :func:`stay_exited` when a stay leaves: payments taken without a lane (pay station,
  refunds) are credited to the lane it left by, as the reports have always done;
- :func:`rebuild` for data loaded in bulk, and :func:`differences` to prove the roll-up
  equals a fresh sum of the payments (``parkinglot reports verify-rollup``).

On PostgreSQL two transactions adding to the same row serialise on its row lock for
the rest of their (short) transactions; a stay's exit touches its rows in a fixed
order (the no-lane row first), so they cannot deadlock one another.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Date, Integer, bindparam, column, delete, func, select, table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .types import UTCDateTime

Key = tuple[date, str, str, int, int]        # day, kind, method, lane_key, tariff_key
Sums = dict[Key, list[int]]                   # key -> [movements, amount_minor]

# Plain table clauses rather than the ORM models, so the Alembic migration that
# backfills the roll-up can use this module against the schema as it was then.
_payment = table("payment", column("id"), column("site_id"), column("session_id"), column("kind"),
                 column("method"), column("amount_minor"), column("lane_id"), column("tariff_version_id"),
                 column("created_at", UTCDateTime()))
_stay = table("parking_session", column("id"), column("exit_lane_id"))
_site = table("site", column("id"), column("timezone"))
_rollup = table("revenue_day", column("site_id"), column("day", Date()), column("kind"), column("method"),
                column("lane_key"), column("tariff_key"), column("movements"), column("amount_minor"))


def local_day(instant: datetime, zone: ZoneInfo) -> date:
    """The site's calendar day an instant falls on (the reports' day, week and month buckets)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    return instant.astimezone(zone).date()


def _upsert(conn: Session | Connection, site_id: int, changes: Sums) -> None:
    """Add ``changes`` to the roll-up rows, creating missing ones (one statement per row)."""
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for (day, kind, method, lane_key, tariff_key), (n, amount) in sorted(changes.items()):
        stmt = insert(_rollup).values(site_id=site_id, day=day, kind=kind, method=method, lane_key=lane_key,
                                      tariff_key=tariff_key, movements=n, amount_minor=amount)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id", "day", "kind", "method", "lane_key", "tariff_key"],
            set_={"movements": _rollup.c.movements + stmt.excluded.movements,
                  "amount_minor": _rollup.c.amount_minor + stmt.excluded.amount_minor})
        conn.execute(stmt)


def add_payment(session: Session, payment: Any, zone: ZoneInfo, exit_lane_id: Optional[int]) -> None:
    """Count a newly written money movement; ``exit_lane_id`` is its stay's exit lane, if it has left."""
    lane = payment.lane_id or exit_lane_id or 0
    key = (local_day(payment.created_at, zone), payment.kind, payment.method, lane, payment.tariff_version_id or 0)
    _upsert(session, payment.site_id, {key: [1, int(payment.amount_minor)]})


# built once: every exit through a lane runs it
_LANELESS_PAYMENTS = (select(_payment.c.created_at, _payment.c.kind, _payment.c.method, _payment.c.amount_minor,
                             _payment.c.tariff_version_id)
                      .where(_payment.c.session_id == bindparam("stay_id", type_=Integer()),
                             _payment.c.lane_id.is_(None)))


def stay_exited(session: Session, site_id: int, stay_id: int, exit_lane_id: Optional[int]) -> None:
    """Credit the stay's lane-less payments to the lane it left by (moved off the no-lane rows)."""
    if not exit_lane_id:
        return
    rows = session.execute(_LANELESS_PAYMENTS, {"stay_id": stay_id}).all()
    if not rows:
        return
    zone = ZoneInfo(session.execute(select(_site.c.timezone).where(_site.c.id == site_id)).scalar_one())
    out: Sums = defaultdict(lambda: [0, 0])
    into: Sums = defaultdict(lambda: [0, 0])
    for created_at, kind, method, amount, tariff in rows:
        day = local_day(created_at, zone)
        for sums, lane, sign in ((out, 0, -1), (into, exit_lane_id, 1)):
            s = sums[(day, kind, method, lane, tariff or 0)]
            s[0] += sign
            s[1] += sign * int(amount)
    _upsert(session, site_id, out)     # the no-lane rows first: a fixed lock order
    _upsert(session, site_id, into)


def from_payments(conn: Session | Connection, site_id: int, zone: ZoneInfo) -> Sums:
    """The roll-up of a site computed afresh from its payments (and its stays' exit lanes)."""
    credited = func.coalesce(_payment.c.lane_id, _stay.c.exit_lane_id, 0)
    stmt = (select(_payment.c.created_at, _payment.c.kind, _payment.c.method, credited,
                   func.coalesce(_payment.c.tariff_version_id, 0), _payment.c.amount_minor)
            .select_from(_payment.outerjoin(_stay, _stay.c.id == _payment.c.session_id))
            .where(_payment.c.site_id == site_id)
            .execution_options(yield_per=20000))
    sums: Sums = defaultdict(lambda: [0, 0])
    days: dict[tuple[int, int, int, int, int], date] = {}
    for created_at, kind, method, lane, tariff, amount in conn.execute(stmt):
        # local day per UTC quarter hour: every zone offset is a multiple of 15 minutes
        slot = (created_at.year, created_at.month, created_at.day, created_at.hour, created_at.minute // 15)
        day = days.get(slot)
        if day is None:
            day = days[slot] = local_day(created_at, zone)
        s = sums[(day, kind, method, int(lane), int(tariff))]
        s[0] += 1
        s[1] += int(amount)
    return dict(sums)


def stored(conn: Session | Connection, site_id: int) -> Sums:
    """The roll-up rows of a site as they are (rows summing to nothing are left out)."""
    r = _rollup.c
    rows = conn.execute(select(r.day, r.kind, r.method, r.lane_key, r.tariff_key, r.movements, r.amount_minor)
                        .where(r.site_id == site_id))
    return {(day, kind, method, int(lane), int(tariff)): [int(n), int(amount)]
            for day, kind, method, lane, tariff, n, amount in rows if n or amount}


def _sites(conn: Session | Connection, site_id: Optional[int]) -> Iterable[tuple[int, ZoneInfo]]:
    stmt = select(_site.c.id, _site.c.timezone).order_by(_site.c.id)
    if site_id is not None:
        stmt = stmt.where(_site.c.id == site_id)
    return [(int(i), ZoneInfo(tz)) for i, tz in conn.execute(stmt)]


def differences(conn: Session | Connection, site_id: Optional[int] = None
                ) -> dict[int, dict[Key, tuple[list[int], list[int]]]]:
    """Per site, the keys where the roll-up and a fresh sum of the payments disagree:
    ``{site_id: {key: (rolled_up, from_payments)}}``; empty when they agree."""
    out: dict[int, dict[Key, tuple[list[int], list[int]]]] = {}
    for sid, zone in _sites(conn, site_id):
        want, have = from_payments(conn, sid, zone), stored(conn, sid)
        bad = {k: (have.get(k, [0, 0]), want.get(k, [0, 0])) for k in set(want) | set(have)
               if have.get(k, [0, 0]) != want.get(k, [0, 0])}
        if bad:
            out[sid] = bad
    return out


def rebuild(conn: Session | Connection, site_id: Optional[int] = None) -> int:
    """Replace the roll-up of one site (or all) with a fresh sum of the payments; rows written."""
    written = 0
    for sid, zone in _sites(conn, site_id):
        sums = from_payments(conn, sid, zone)
        conn.execute(delete(_rollup).where(_rollup.c.site_id == sid))
        rows = [{"site_id": sid, "day": k[0], "kind": k[1], "method": k[2], "lane_key": k[3], "tariff_key": k[4],
                 "movements": v[0], "amount_minor": v[1]} for k, v in sorted(sums.items())]
        for i in range(0, len(rows), 5000):
            conn.execute(_rollup.insert(), rows[i:i + 5000])
        written += len(rows)
    return written
