"""Issue 2 benchmark: lookups over 1,000,000 stays and the cost of recording an entry.

    python benchmarks/records_store.py [--stays 1000000] [--backends sqlite,postgresql] [--json OUT]

Exact lookup (goal p50 < 2 ms) and fuzzy lookup (goal p50 < 20 ms) over the stays of
one site; recording one entry = read + evidence row + stay + audit event, committed
(goal p50 < 10 ms on SQLite; the image file write is excluded, as the issue asks).
"""
from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import scratch_postgres, summary, time_calls, write_json  # noqa: E402
from benchmarks.dataset import build, random_plate, table_sizes  # noqa: E402
from parkinglot import plates  # noqa: E402
from parkinglot.db import make_engine, make_session_factory, read_only_engine  # noqa: E402
from parkinglot.records import audit, lookup, migrate, reads, stays  # noqa: E402
from parkinglot.records.models import Evidence, Lane  # noqa: E402
from parkinglot.records.types import utcnow  # noqa: E402


def mutate(plate: str, rng: random.Random) -> str:
    """A plausible misread: one look-alike swap, and sometimes a dropped character."""
    chars = list(plate)
    swappable = [i for i, c in enumerate(chars) if any(c in g for g in plates.CONFUSION_GROUPS)]
    if swappable:
        i = rng.choice(swappable)
        group = next(g for g in plates.CONFUSION_GROUPS if chars[i] in g)
        chars[i] = rng.choice([c for c in group if c != chars[i]])
    if rng.random() < 0.3 and len(chars) > 3:
        del chars[rng.randrange(len(chars))]
    return "".join(chars)


def run_backend(url: str, n_stays: int, queries: int, entries: int) -> dict:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine, info=audit.session_info(b"benchmark-audit-plate-key"))
    t0 = time.perf_counter()
    info = build(engine, factory, stays=n_stays)
    load_s = time.perf_counter() - t0
    rng = random.Random(1)
    site_id = info["site_id"]
    pool = info["pool"]
    session = make_session_factory(read_only_engine(engine))()

    exact_q = [rng.choice(pool) for _ in range(queries)]
    it = iter(exact_q * 2)
    exact = time_calls(lambda: lookup.by_plate(session, site_id, next(it), limit=20), queries, warmup=5)
    session.rollback()

    fuzzy_q = [mutate(rng.choice(pool), rng) for _ in range(queries)]
    it2 = iter(fuzzy_q * 2)
    found = []
    fuzzy = time_calls(lambda: found.append(lookup.fuzzy_sessions(session, site_id, next(it2), limit=10)),
                       queries, warmup=5)
    hit_rate = sum(1 for f in found[5:] if f) / max(len(found) - 5, 1)
    session.rollback()

    # recording one entry: read + evidence row + stay + audit, committed
    lane = session.query(Lane).filter(Lane.site_id == site_id, Lane.direction == "entry").first()
    lane_id, zone_id = lane.id, lane.zone_id
    session.rollback()
    counter = iter(range(10**9))

    def record_entry():
        i = next(counter)
        plate = random_plate(rng) + "Q"  # never collides with an open stay
        with factory() as s:
            now = utcnow()
            digest = hashlib.sha256(f"{plate}{i}".encode()).hexdigest()
            s.add(Evidence(sha256=digest, content_type="image/jpeg", size_bytes=120_000, width=1280, height=720))
            read = reads.store_read(s, reads.ReadInput(
                lane=s.get(Lane, lane_id), captured_at=now - timedelta(milliseconds=80), received_at=now,
                plate=plate, raw_text=plate, confidence=0.93, candidates=[{"text": plate, "confidence": 0.93}],
                box=[[10, 10], [110, 10], [110, 40], [10, 40]], event_id=f"bench-{i}"), )
            stays.open_stay(s, site_id=site_id, plate=plate, entered_at=now, entry_lane_id=lane_id,
                            entry_read_id=read.id, zone_id=zone_id)
            s.commit()

    entry = time_calls(record_entry, entries, warmup=5)
    session.close()
    sizes = table_sizes(engine)
    engine.dispose()
    return {
        "dataset": {k: info[k] for k in ("stays", "distinct_plates", "open_stays")},
        "load_seconds": round(load_s, 1),
        "sizes": sizes,
        "exact_lookup": summary(exact),
        "fuzzy_lookup": {**summary(fuzzy), "queries_with_candidates": round(hit_rate, 3)},
        "record_entry": summary(entry),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stays", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--entries", type=int, default=300)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    results = {}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results["sqlite"] = run_backend(f"sqlite:///{tmp}/bench.db", args.stays, args.queries, args.entries)
        elif backend == "postgresql":
            with scratch_postgres() as url:
                results["postgresql"] = run_backend(url, args.stays, args.queries, args.entries)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
