"""Issue 8 soak: mixed traffic against gunicorn + PostgreSQL for a fixed time, with optional faults.

    python benchmarks/soak.py [--minutes 10] [--faults] [--data ../shared/data/plates] [--json OUT]

Traffic (loopback only, bounded by --minutes):
  * four lane controllers: plate-string events and 720p JPEG frame events, each car an
    entry then an exit; like real controllers they retry a failed request with the SAME
    event id (with backoff) until they get a decision;
  * two attendants browsing the console (dashboard, live feed, stay search, alerts);
  * finance pulling the revenue report (JSON and CSV).
With --faults: a gunicorn worker is SIGKILLed mid-load, and PostgreSQL is restarted.
Reported: throughput, p50/p99 per endpoint, errors by kind, worker RSS at start and end.
Afterwards: every acknowledged event has exactly one read and one decision, nothing was
stored twice, and the audit chain verifies.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import percentile, scratch_postgres, write_json  # noqa: E402
from benchmarks.lane_load import check_consistency, free_port  # noqa: E402
from parkinglot.demo import demo_password  # noqa: E402


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.acked: list[str] = []
        self.retries = 0

    def record(self, endpoint: str, ms: float, status: int) -> None:
        with self.lock:
            if 200 <= status < 400:
                self.lat[endpoint].append(ms)
            else:
                self.errors[endpoint][str(status)] += 1


def _request(base: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             timeout: float = 30) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection(base, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def lane_controller(base: str, key: str, entry: str, exit_: str, frames: list[bytes], stop: threading.Event,
                    stats: Stats, rate: float, frame_share: float, seed: int) -> None:
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        n += 1
        plate = "S" + "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(6))
        for lane in (entry, exit_):
            event_id = f"soak-{seed}-{n}-{lane}"
            use_frame = rng.random() < frame_share
            if use_frame:
                boundary = uuid.uuid4().hex
                frame = rng.choice(frames)
                body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"event_id\"\r\n\r\n{event_id}\r\n"
                        f"--{boundary}\r\nContent-Disposition: form-data; name=\"frame\"; filename=\"f.jpg\"\r\n"
                        f"Content-Type: image/jpeg\r\n\r\n").encode() + frame + f"\r\n--{boundary}--\r\n".encode()
                headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
                endpoint = "lane_event_frame"
            else:
                body = json.dumps({"plate": plate, "confidence": 0.96, "event_id": event_id}).encode()
                headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                endpoint = "lane_event_plate"
            attempt = 0
            while True:  # a real controller retries with the same event id until it has a decision
                t0 = time.perf_counter()
                try:
                    status, payload, _ = _request(base, "POST", f"/api/v1/lanes/{lane}/events", body, headers)
                except (OSError, http.client.HTTPException):  # reset, refused, cut mid-reply
                    status, payload = 0, b""
                stats.record(endpoint, (time.perf_counter() - t0) * 1000, status)
                if status == 200:
                    with stats.lock:
                        stats.acked.append(json.loads(payload)["event_id"])
                    break
                attempt += 1
                with stats.lock:
                    stats.retries += 1
                if attempt > 40:
                    break
                time.sleep(min(0.2 * attempt, 2.0))
            stop.wait(rng.expovariate(rate))


def _login(base: str, username: str, password: str) -> str | None:
    status, page, headers = _request(base, "GET", "/login")
    token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page)
    cookie = headers.get("Set-Cookie", "").split(";")[0]
    if not token:
        return None
    form = f"csrf_token={token.group(1).decode()}&username={username}&password={password}".encode()
    status, _, headers = _request(base, "POST", "/login", form, {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    return headers.get("Set-Cookie", "").split(";")[0] or cookie


def attendant(base: str, stop: threading.Event, stats: Stats, seed: int) -> None:
    rng = random.Random(seed)
    cookie = None
    pages = ["/dashboard", "/live.json", "/alerts", "/stays?q=S", "/stays?q=S1&mode=fuzzy", "/lanes"]
    while not stop.is_set():
        if cookie is None:
            try:
                cookie = _login(base, "attendant", demo_password("attendant"))
            except (OSError, http.client.HTTPException):
                stop.wait(1)
                continue
        page = rng.choice(pages)
        t0 = time.perf_counter()
        try:
            status, _, _ = _request(base, "GET", page, headers={"Cookie": cookie})
        except (OSError, http.client.HTTPException):
            status = 0
        stats.record("console " + page.split("?")[0], (time.perf_counter() - t0) * 1000, status)
        if status in (302, 401):
            cookie = None
        stop.wait(rng.uniform(0.3, 1.0))


def finance(base: str, site: str, stop: threading.Event, stats: Stats) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"finance:{demo_password('finance')}".encode()).decode()}
    today = time.strftime("%Y-%m-%d")
    first = time.strftime("%Y-%m-01")
    while not stop.is_set():
        for fmt in ("json", "csv"):
            t0 = time.perf_counter()
            try:
                status, _, _ = _request(base, "GET", f"/api/v1/reports/revenue?site={site}&from={first}&to={today}"
                                        f"&group_by=day&format={fmt}", headers=auth)
            except (OSError, http.client.HTTPException):
                status = 0
            stats.record(f"report_{fmt}", (time.perf_counter() - t0) * 1000, status)
        stop.wait(5)


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def restart_postgres(down_s: float = 8.0) -> str:
    """Stop the server, keep it down for ``down_s`` seconds (requests must fail meanwhile), start it."""
    clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()
    if len(clusters) < 2:
        return "pg_lsclusters found no cluster"
    version, name = clusters[0], clusters[1]
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name]
    stop = subprocess.run(ctl + ["stop", "-m", "fast"], capture_output=True, text=True)
    time.sleep(down_s)
    start = subprocess.run(ctl + ["start"], capture_output=True, text=True)
    if stop.returncode or start.returncode:
        return f"failed: {(stop.stderr + start.stderr).strip()[:200]}"
    return f"stopped for {down_s:.0f} s, then started"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--faults", action="store_true")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--lane-rate", type=float, default=4.0, help="cars per second per controller")
    ap.add_argument("--frame-share", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.minutes <= 0:
        raise SystemExit("--minutes must be positive")
    from benchmarks.lpr_latency import frames_from

    frames = frames_from(args.data, 20)
    result: dict = {"minutes": args.minutes, "faults": args.faults, "workers": args.workers}
    with scratch_postgres() as url, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PARKINGLOT_DATABASE_URL=url, PARKINGLOT_INSTANCE_PATH=tmp)
        py = sys.executable
        subprocess.run([py, "-m", "parkinglot.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([py, "-m", "parkinglot.cli", "demo", "--stays", "150"], env=env, check=True, capture_output=True)
        key = json.loads(subprocess.run([py, "-m", "parkinglot.cli", "devices", "add", "--site", "DT", "--name", "soak"],
                                        env=env, check=True, capture_output=True, text=True).stdout)["api_key"]
        port = free_port()
        base = f"127.0.0.1:{port}"
        log = open(Path(tmp) / "gunicorn.log", "w")
        master = subprocess.Popen([py, "-m", "gunicorn", "-c", str(ROOT / "parkinglot/web/gunicorn_conf.py"),
                                   "--bind", base, "--workers", str(args.workers), "--access-logfile", "/dev/null",
                                   "parkinglot.web:create_app()"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        for _ in range(360):
            try:
                if _request(base, "GET", "/readyz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        stats = Stats()
        stop = threading.Event()
        threads = [threading.Thread(target=lane_controller, args=(base, key, e, x, frames, stop, stats, args.lane_rate,
                                                                  args.frame_share, i))
                   for i, (e, x) in enumerate([("DT-IN-1", "DT-OUT-1"), ("DT-IN-2", "DT-OUT-2"),
                                               ("DT-IN-1", "DT-OUT-2"), ("DT-IN-2", "DT-OUT-1")])]
        threads += [threading.Thread(target=attendant, args=(base, stop, stats, 100 + i)) for i in range(2)]
        threads.append(threading.Thread(target=finance, args=(base, "DT", stop, stats)))
        time.sleep(5)
        rss_start = rss_mb(worker_pids(master.pid))
        t_start = time.perf_counter()
        [t.start() for t in threads]
        duration = args.minutes * 60
        faults_log = []
        samples = []
        fault_plan = [(duration * 0.3, "kill_worker"), (duration * 0.6, "restart_postgres")] if args.faults else []
        while time.perf_counter() - t_start < duration:
            elapsed = time.perf_counter() - t_start
            if fault_plan and elapsed >= fault_plan[0][0]:
                _, kind = fault_plan.pop(0)
                if kind == "kill_worker":
                    pids = worker_pids(master.pid)
                    if pids:
                        os.kill(pids[0], signal.SIGKILL)
                        faults_log.append({"at_s": round(elapsed), "fault": "SIGKILL gunicorn worker", "pid": pids[0]})
                else:
                    faults_log.append({"at_s": round(elapsed), "fault": "PostgreSQL restart",
                                       "result": restart_postgres()})
            samples.append((round(elapsed), rss_mb(worker_pids(master.pid))))
            time.sleep(10)
        stop.set()
        [t.join(timeout=120) for t in threads]
        elapsed = time.perf_counter() - t_start
        rss_end = rss_mb(worker_pids(master.pid))
        os.killpg(master.pid, signal.SIGTERM)
        master.wait(timeout=60)
        log.close()
        endpoints = {}
        total = 0
        for ep, lat in sorted(stats.lat.items()):
            total += len(lat)
            endpoints[ep] = {"ok": len(lat), "per_s": round(len(lat) / elapsed, 2),
                             "p50_ms": round(statistics.median(lat), 1), "p99_ms": round(percentile(lat, 0.99), 1),
                             "errors": dict(stats.errors.get(ep, {}))}
        for ep, errs in stats.errors.items():
            endpoints.setdefault(ep, {"ok": 0, "errors": dict(errs)})
        result.update({
            "seconds": round(elapsed), "requests_ok": total, "throughput_per_s": round(total / elapsed, 1),
            "controller_retries": stats.retries, "endpoints": endpoints, "faults_injected": faults_log,
            "worker_rss_mb": {"start": rss_start, "end": rss_end, "samples": samples},
            "consistency": check_consistency(url, stats.acked, prefixes=("soak-",)),
        })
        write_json(args.json, result)  # before the scratch database is dropped


if __name__ == "__main__":
    main()
