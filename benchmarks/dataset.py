"""Synthetic data at scale for benchmarks: a site with N stays (and optionally payments).

Rows are bulk-inserted (COPY on PostgreSQL) rather than created through the
services, but they are exactly what the services would store, including the
fuzzy index keys.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, insert, text

from parkinglot import plates
from parkinglot.records import revenue_rollup, sites
from parkinglot.records.models import ParkingSession, Payment, PlateKey, User

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
DIGITS = "0123456789"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def random_plate(rng: random.Random) -> str:
    pattern = rng.choice(["LLL9999", "9LLL999", "LL99LLL", "LLL999", "999LLL9"])
    return "".join(rng.choice(LETTERS if c == "L" else DIGITS) for c in pattern)


def _copy(engine: Engine, table: str, columns: list[str], rows) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        raw.commit()
    finally:
        raw.close()


def _bulk(engine: Engine, model, columns: list[str], rows, chunk: int = 20000) -> None:
    if engine.dialect.name == "postgresql":
        _copy(engine, model.__tablename__, columns, rows)
        return
    batch = []
    with engine.begin() as conn:
        for row in rows:
            batch.append(dict(zip(columns, row)))
            if len(batch) >= chunk:
                conn.execute(insert(model), batch)
                batch = []
        if batch:
            conn.execute(insert(model), batch)


def build(engine: Engine, factory, *, stays: int, payments: int = 0, seed: int = 7,
          distinct_plates: int | None = None) -> dict:
    """Create site ``BENCH`` with ``stays`` stays over ~2 years and ``payments`` payments."""
    rng = random.Random(seed)
    with factory() as session:
        site = sites.create_site(session, code="BENCH", name="Benchmark", timezone="Europe/Berlin",
                                 currency="EUR", plate_region="us", capacity=5000)
        zone = sites.create_zone(session, site, "Z", "Main", 5000)
        lanes = [sites.create_lane(session, site, code=f"B-IN{i}", name=f"In {i}", direction="entry", zone=zone)
                 for i in range(2)] + [
                 sites.create_lane(session, site, code=f"B-OUT{i}", name=f"Out {i}", direction="exit", zone=zone)
                 for i in range(2)]
        session.commit()
        site_id, zone_id = site.id, zone.id
        lane_ids = [l.id for l in lanes]
    n_plates = distinct_plates or max(stays // 4, 1)
    pool = list({random_plate(rng) for _ in range(int(n_plates * 1.1))})[:n_plates]
    # stays: ordered in time; the last stay of ~3% of plates is still open
    open_plates = set(rng.sample(pool, max(1, len(pool) // 33)))
    span = 2 * 365 * 24 * 3600
    times = sorted(rng.random() * span for _ in range(stays))
    plate_of = [rng.choice(pool) for _ in range(stays)]
    last_index = {p: i for i, p in enumerate(plate_of)}

    def stay_rows():
        for i in range(stays):
            p = plate_of[i]
            entered = START + timedelta(seconds=times[i])
            is_open = p in open_plates and last_index[p] == i
            exited = None if is_open else entered + timedelta(minutes=rng.randint(5, 600))
            yield (i + 1, site_id, zone_id, p, "open" if is_open else "closed", entered, exited,
                   lane_ids[i % 2], None if is_open else lane_ids[2 + i % 2],
                   None if is_open else rng.randint(0, 3000), False, entered)

    cols = ["id", "site_id", "zone_id", "plate", "status", "entered_at", "exited_at", "entry_lane_id",
            "exit_lane_id", "fee_minor", "lost_ticket", "created_at"]
    _bulk(engine, ParkingSession, cols, stay_rows())

    def key_rows():
        for p in set(plate_of):
            for k in plates.index_keys(p):
                yield (site_id, k, p)

    _bulk(engine, PlateKey, ["site_id", "key", "plate"], key_rows())

    if payments:
        methods = ["cash", "card", "app", "card", "card"]

        def pay_rows():
            for i in range(payments):
                at = START + timedelta(seconds=rng.random() * span)
                kind, amount = ("refund", -rng.randint(100, 1500)) if i % 50 == 0 else ("payment", rng.randint(100, 3000))
                yield (i + 1, site_id, (i % stays) + 1, kind, methods[i % 5], amount, "EUR", f"bench-{i}",
                       lane_ids[2 + i % 2], "bench correction" if kind == "refund" else None,
                       1 if kind == "refund" else None, at)

        with factory() as session:  # refunds must name an operator
            session.add(User(id=1, username="bench", password_hash="x", role="finance"))
            session.commit()
        _bulk(engine, Payment, ["id", "site_id", "session_id", "kind", "method", "amount_minor", "currency",
                                "reference", "lane_id", "reason", "user_id", "created_at"], pay_rows())
        with engine.begin() as conn:  # bulk rows bypass the services: sum them into the daily roll-up once
            revenue_rollup.rebuild(conn, site_id)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("parking_session", "payment"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return {"site_id": site_id, "stays": stays, "distinct_plates": len(set(plate_of)),
            "open_stays": len(open_plates), "payments": payments, "pool": pool[:2000], "lane_ids": lane_ids}


def table_sizes(engine: Engine) -> dict:
    """Bytes used by each table and its indexes (dbstat on SQLite, pg_*_size on PostgreSQL)."""
    out = {}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("parking_session", "plate_key", "payment"):
                t, i = conn.execute(text(f"SELECT pg_table_size('{table}'), pg_indexes_size('{table}')")).one()
                out[table] = {"table_bytes": t, "index_bytes": i}
        else:
            try:
                rows = conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all()
            except Exception:  # dbstat not compiled in
                return {}
            sizes = dict(rows)
            for table in ("parking_session", "plate_key", "payment"):
                idx = {n: s for n, s in sizes.items() if n.startswith(("ix_" + table, "uq_" + table, "sqlite_autoindex_" + table))}
                out[table] = {"table_bytes": sizes.get(table, 0), "index_bytes": sum(idx.values()),
                              "indexes": idx}
    return out
