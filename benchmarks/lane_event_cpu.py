"""Issue 5, in process: application CPU and SQL statements per plate-string lane event.

    python benchmarks/lane_event_cpu.py [--db postgresql|sqlite] [--events 2000] [--warmup 200]
                                        [--profile OUT.prof] [--priced] [--json OUT]

Builds the app on a scratch database (PostgreSQL on the local server, or a SQLite
file), creates a site with an entry and an exit lane and one device the way
``lane_load.py`` does, then posts plate-string events (JSON body, no image)
through the Flask test client: fresh plates, entry then exit, alternating lanes.
Reports ``time.process_time`` per event (robust on a busy machine: it counts only
this process's CPU, which includes the database driver but not the server) and the
statements sent per event (a ``before_cursor_execute`` listener). The lane-decision
log lines are formatted as in production (JSON) and written to /dev/null.
Bounded: a fixed number of events, loopback only.
"""
from __future__ import annotations

import argparse
import cProfile
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import scratch_postgres, write_json  # noqa: E402


def plate_for(n: int) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    v, s = n * 7919 + 104729, ""
    for _ in range(6):
        s += alphabet[v % 33]
        v //= 33
    return "Q" + s


def quiet_json_logs() -> None:
    """Production formats every lane decision as a JSON line; do the same work, keep the output."""
    from parkinglot.logs import JsonFormatter

    logger = logging.getLogger("parkinglot")
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False


def run(db_url: str, tmp: Path, n: int, warmup: int, profile: str | None, priced: bool = False) -> dict:
    from sqlalchemy import event

    from parkinglot.records import migrate
    from parkinglot.web import create_app
    from benchmarks.lane_load import check_consistency, setup_site

    app = create_app({"INSTANCE_PATH": str(tmp / "instance"), "DATABASE_URL": db_url,
                      "EVIDENCE_DIR": str(tmp / "evidence"), "SECRET_KEY": "bench", "LOG_LEVEL": "INFO"})
    engine = app.extensions["parkinglot"].engine
    migrate.upgrade(engine)
    site = setup_site(db_url, priced=priced)
    quiet_json_logs()
    statements = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args) -> None:
        statements[0] += 1

    client = app.test_client()
    headers = {"Authorization": f"Bearer {site['key']}"}
    acked: list[str] = []
    counter = [0]
    first: dict = {}

    def post_one() -> None:
        i = counter[0] = counter[0] + 1
        lane = site["entry"] if i % 2 == 1 else site["exit"]
        body = {"plate": plate_for((i + 1) // 2), "confidence": 0.97, "event_id": f"cpu-{i}"}
        resp = client.post(f"/api/v1/lanes/{lane}/events", json=body, headers=headers)
        if resp.status_code != 200:
            raise SystemExit(f"event {i}: HTTP {resp.status_code} {resp.get_data(as_text=True)[:300]}")
        reply = resp.get_json()
        if reply["decision"] != "open":
            raise SystemExit(f"event {i}: expected open, got {reply}")
        acked.append(reply["event_id"])
        if i == 1:
            first.update(reply)

    for _ in range(warmup):
        post_one()
    statements[0] = 0
    prof = cProfile.Profile(time.process_time) if profile else None  # CPU, not waiting
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for _ in range(n):
        post_one()
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    # a retry of an acknowledged event gets the same answer and stores nothing (counted below)
    replay = client.post(f"/api/v1/lanes/{site['entry']}/events", headers=headers,
                         json={"plate": plate_for(1), "confidence": 0.97, "event_id": "cpu-1"}).get_json()
    app.extensions["parkinglot"].close()
    return {"events": n, "cpu_ms_per_event": round(cpu * 1000 / n, 3), "wall_ms_per_event": round(wall * 1000 / n, 3),
            "statements_per_event": round(statements[0] / n, 2), "retry_replays_first_reply": replay == first,
            "consistency": check_consistency(db_url, acked, prefixes=("cpu-",))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="postgresql", choices=["postgresql", "sqlite"])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--profile", help="write a cProfile of the measured events here")
    ap.add_argument("--priced", action="store_true", help="site with a capacity and the demo tariff")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pl-cpu-"))
    if args.db == "postgresql":
        with scratch_postgres() as url:
            result = run(url, tmp, args.events, args.warmup, args.profile, args.priced)
    else:
        result = run(f"sqlite:///{tmp / 'cpu.db'}", tmp, args.events, args.warmup, args.profile, args.priced)
    import parkinglot

    write_json(args.json, {"db": args.db, "priced_site": args.priced, "code": str(Path(parkinglot.__file__).parent), **result})


if __name__ == "__main__":
    main()
