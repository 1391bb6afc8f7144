"""Issue 5 load test: gunicorn on 127.0.0.1, lane controllers hammering the events endpoint.

    python benchmarks/lane_load.py [--db postgresql|sqlite] [--plates-seconds 30] [--frames-seconds 60]
                                   [--frames-rate 10] [--data ../shared/data/plates] [--json OUT]

1. plate-string events (entries and exits of fresh plates) with ``wrk`` for a fixed
   duration: throughput and latency percentiles (goal >= 300 req/s);
2. 720p JPEG frame events at a fixed rate (goal p50 <= 150 ms, p99 <= 400 ms at 10 req/s
   for 60 s), sent by a paced Python client;
3. afterwards, every acknowledged event id must have exactly one stored read and one
   decision, nothing else may have been stored twice, and ``audit verify`` must pass.
Bounded: fixed durations, loopback only.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import percentile, scratch_postgres, write_json  # noqa: E402


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(db_url: str, instance: Path, workers: int, threads: int, warm: bool) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, PARKINGLOT_DATABASE_URL=db_url, PARKINGLOT_INSTANCE_PATH=str(instance),
               PARKINGLOT_WARM_RECOGNIZER="1" if warm else "0", PARKINGLOT_THREADS=str(threads))
    env.pop("PARKINGLOT_EVIDENCE_DIR", None)
    py = sys.executable
    subprocess.run([py, "-m", "parkinglot.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
    log = open(instance / "gunicorn.log", "w")
    proc = subprocess.Popen([py, "-m", "gunicorn", "-c", str(ROOT / "parkinglot/web/gunicorn_conf.py"),
                             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--access-logfile", "/dev/null",
                             "parkinglot.web:create_app()"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(base, timeout=2)
            conn.request("GET", "/readyz" if warm else "/healthz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        raise SystemExit(f"server did not start; see {instance / 'gunicorn.log'}")
    try:
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def setup_site(db_url: str, *, priced: bool = False) -> dict:
    """The load site: two lanes and a device. ``priced`` adds what a real site has and the
    bare one lacks: a capacity (every entry counts the cars inside) and the demo tariff
    (every exit is priced by the tariff engine)."""
    from datetime import timedelta

    from parkinglot.billing import tariffs
    from parkinglot.context import build_context
    from parkinglot.db import transaction
    from parkinglot.demo import DEMO_TARIFF
    from parkinglot.records import sites
    from parkinglot.records.types import utcnow

    ctx = build_context({"DATABASE_URL": db_url})
    with transaction(ctx.sessions) as s:
        site = sites.create_site(s, code="LOAD", name="Load test", timezone="Europe/Berlin",
                                 currency="USD" if priced else "EUR", plate_region="us",
                                 capacity=2000 if priced else None, duplicate_window_s=0, barrier_mode="pull")
        if priced:
            tariffs.create_version(s, site, code="standard", name="Standard", rules=DEMO_TARIFF,
                                   effective_from=utcnow() - timedelta(days=1), make_default=True)
        entry = sites.create_lane(s, site, code="L-IN", name="In", direction="entry")
        exit_ = sites.create_lane(s, site, code="L-OUT", name="Out", direction="exit")
        key = sites.create_device(s, site, "load").key
        out = {"key": key, "entry": entry.code, "exit": exit_.code}
    ctx.close()
    return out


def run_wrk(base: str, site: dict, seconds: int, threads: int, outdir: Path) -> dict:
    env = dict(os.environ, PL_KEY=site["key"], PL_ENTRY=site["entry"], PL_EXIT=site["exit"], PL_OUT=str(outdir))
    cmd = ["wrk", f"-t{threads}", f"-c{threads}", f"-d{seconds}s", "--latency", "-s",
           str(ROOT / "benchmarks/load/plate_events.lua"), f"http://{base}"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    text = res.stdout
    out = {"raw": text}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            out["req_per_s"] = float(line.split()[1])
        for pct in ("50%", "90%", "99%"):
            if line.startswith(pct):
                out[f"p{pct[:-1]}"] = line.split()[1]
        if "requests in" in line:
            out["requests"] = int(line.split()[0])
        if line.startswith("Non-2xx"):
            out["non_2xx"] = int(line.split()[-1])
    acked: list[str] = []
    bad_status = 0
    samples: list[str] = []
    for f in outdir.glob("ok-*.txt"):
        for line in f.read_text().splitlines():
            if line.startswith("STATUS"):
                bad_status += 1
                if len(samples) < 3:
                    samples.append(line[:300])
            elif line:
                acked.append(line)
    out["acknowledged"] = len(acked)
    out["non_200"] = bad_status
    out["non_200_samples"] = samples
    out["acked_ids"] = acked
    return out


def load_frames(data: Path | None, n: int) -> list[bytes]:
    from benchmarks.lpr_latency import frames_from

    return frames_from(data, n)


def run_frames(base: str, site: dict, seconds: int, rate: float, frames: list[bytes]) -> dict:
    """Paced client: one request every 1/rate s on a few connections; latency of each."""
    lat: list[float] = []
    statuses: dict[int, int] = {}
    acked: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    interval = 1.0 / rate
    schedule_start = time.perf_counter()
    counter = iter(range(10**9))

    def worker(wid: int) -> None:
        conn = http.client.HTTPConnection(base, timeout=30)
        while True:
            i = next(counter)
            due = schedule_start + i * interval
            if due > stop_at:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event_id = f"fr-{i}"
            boundary = uuid.uuid4().hex
            lane = site["entry"] if i % 2 == 0 else site["exit"]
            frame = frames[(i // 2) % len(frames)]
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"event_id\"\r\n\r\n{event_id}\r\n"
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"frame\"; filename=\"f.jpg\"\r\n"
                    f"Content-Type: image/jpeg\r\n\r\n").encode() + frame + f"\r\n--{boundary}--\r\n".encode()
            t0 = time.perf_counter()
            try:
                conn.request("POST", f"/api/v1/lanes/{lane}/events", body=body, headers={
                    "Authorization": f"Bearer {site['key']}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}"})
                resp = conn.getresponse()
                payload = resp.read()
                status = resp.status
            except OSError:
                conn = http.client.HTTPConnection(base, timeout=30)
                status, payload = 0, b""
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                lat.append(ms)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    acked.append(json.loads(payload)["event_id"])

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return {"requests": len(lat), "statuses": statuses, "rate_per_s": rate, "seconds": seconds,
            "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p99_ms": round(percentile(lat, 0.99), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None, "acked_ids": acked}


def check_consistency(db_url: str, acked: list[str], prefixes: tuple[str, ...] = ()) -> dict:
    """Every acknowledged event: one read, one decision. No duplicates anywhere. Audit chain intact.

    With ``prefixes``, also the load's own stored events that no client saw acknowledged
    (a reply lost and never retried): those would be records the controller doesn't know of.
    """
    from sqlalchemy import func, select

    from parkinglot.context import build_context
    from parkinglot.records import audit
    from parkinglot.records.models import Decision, PlateRead

    ctx = build_context({"DATABASE_URL": db_url})
    with ctx.read_sessions() as s:
        stored = dict(s.execute(select(PlateRead.event_id, func.count()).group_by(PlateRead.event_id)).all())
        reads_without_decision = s.scalar(
            select(func.count()).select_from(PlateRead).outerjoin(Decision, Decision.read_id == PlateRead.id)
            .where(Decision.id.is_(None)))
        decisions_per_read = s.execute(select(Decision.read_id).where(Decision.read_id.is_not(None))
                                       .group_by(Decision.read_id).having(func.count() > 1)).all()
        verify = audit.verify(s)
    ctx.close()
    missing = [e for e in acked if stored.get(e, 0) != 1]
    dup_acks = len(acked) - len(set(acked))
    ours = {e for e in stored if e and prefixes and e.startswith(prefixes)}
    extra = {"stored_but_never_acknowledged": len(ours - set(acked))} if prefixes else {}
    return {"acknowledged": len(acked), "stored_reads": sum(stored.values()), **extra,
            "acknowledged_but_not_stored_once": len(missing), "duplicate_acks": dup_acks,
            "reads_without_decision": reads_without_decision, "reads_with_several_decisions": len(decisions_per_read),
            "audit_ok": verify.ok, "audit_events": verify.checked}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="postgresql", choices=["postgresql", "sqlite"])
    ap.add_argument("--plates-seconds", type=int, default=30)
    ap.add_argument("--frames-seconds", type=int, default=60)
    ap.add_argument("--frames-rate", type=float, default=10.0)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--wrk-threads", "--controllers", dest="wrk_threads", type=int,
                    help="concurrent lane controllers, one wrk thread and connection each, so that a car's "
                         "exit never overtakes its entry (default: workers x threads, one per server thread)")
    ap.add_argument("--priced", action="store_true",
                    help="a site with a capacity and the demo tariff (entries count, exits are priced)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if not shutil.which("wrk") and args.plates_seconds:
        raise SystemExit("wrk is needed for the plate-event load (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="pl-load-"))
    args.wrk_threads = args.wrk_threads or args.workers * args.threads
    result: dict = {"db": args.db, "workers": args.workers, "threads": args.threads, "controllers": args.wrk_threads,
                    "priced_site": args.priced}

    def body(db_url: str) -> None:
        from parkinglot.records import migrate
        from parkinglot.db import make_engine

        engine = make_engine(db_url)
        migrate.upgrade(engine)
        engine.dispose()
        site = setup_site(db_url, priced=args.priced)
        acked: list[str] = []
        with server(db_url, tmp, args.workers, args.threads, warm=args.frames_seconds > 0) as base:
            if args.plates_seconds:
                outdir = tmp / "wrk"
                outdir.mkdir()
                w = run_wrk(base, site, args.plates_seconds, args.wrk_threads, outdir)
                acked += w.pop("acked_ids")
                result["plate_events"] = {k: v for k, v in w.items() if k != "raw"}
            if args.frames_seconds:
                frames = load_frames(args.data, 40)
                f = run_frames(base, site, args.frames_seconds, args.frames_rate, frames)
                acked += f.pop("acked_ids")
                result["frame_events"] = f
        result["consistency"] = check_consistency(db_url, acked)

    if args.db == "postgresql":
        with scratch_postgres() as url:
            body(url)
    else:
        body(f"sqlite:///{tmp / 'load.db'}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
