"""Restore drill (issue 22): a backup taken while lane events arrive, restored onto a fresh machine state.

    python benchmarks/restore_drill.py [--db postgresql|sqlite] [--seconds 40] [--backup-at 15]
                                       [--plate-rate 30] [--frame-rate 1] [--json OUT]

1. a served instance (gunicorn, as ``lane_load.py`` starts it) with a site, two lanes and a device;
2. the demo history (stays with photos) is loaded first; lane controllers post plate events (an
   entry, then the exit of the same fresh plate) at a fixed rate, and optionally frame events
   (synthetic plates read by the real recogniser, so new photos arrive too);
3. at ``--backup-at`` seconds ``parkinglot backup`` runs as an operator would, with
   ``$PARKINGLOT_BACKUP_PASSPHRASE`` set so the instance keys travel encrypted; the load goes on;
4. ``parkinglot restore`` onto a fresh instance folder (no keys) and a fresh database;
5. compared: every table's row count in the restored database against the backup's manifest
   (its own snapshot); the audit chain (each event's hash, 1..head) against the source; reads and
   decisions, which never change once written, row by row against the source for the ids in the
   backup; every restored photo's SHA-256 against its name, the source file and the database;
   every event acknowledged before the backup started present exactly once, none sent after it ended.
Bounded: fixed durations, loopback only.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import percentile, scratch_postgres, write_json  # noqa: E402
from benchmarks.lane_load import load_frames, server  # noqa: E402

PASSPHRASE = "restore-drill-passphrase-" + uuid.uuid4().hex[:8]
READ_COLUMNS = "id, lane_id, event_id, captured_at, received_at, plate, raw_text, confidence, evidence_sha256, ticket"
DECISION_COLUMNS = "id, read_id, lane_id, outcome, reason, session_id, fee_due_minor, actor, response"


def cli(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "parkinglot.cli", *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"parkinglot {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, proc.stdout + proc.stderr


def instance_env(db_url: str, instance: Path) -> dict[str, str]:
    env = dict(os.environ, PARKINGLOT_DATABASE_URL=db_url, PARKINGLOT_INSTANCE_PATH=str(instance),
               PARKINGLOT_BACKUP_PASSPHRASE=PASSPHRASE, PYTHONPATH=str(ROOT))
    env.pop("PARKINGLOT_EVIDENCE_DIR", None)
    return env


def setup_site(db_url: str, instance: Path, history: int) -> dict:
    """The demo site with ``history`` past stays (photos included), and the drill's own site."""
    from parkinglot.context import build_context
    from parkinglot.db import transaction
    from parkinglot.demo import load_demo
    from parkinglot.records import migrate, sites

    ctx = build_context({"DATABASE_URL": db_url, "INSTANCE_PATH": str(instance)})
    migrate.upgrade(ctx.engine)
    if history:
        load_demo(ctx, history=history)
    with transaction(ctx.sessions) as s:
        site = sites.create_site(s, code="DRILL", name="Restore drill", timezone="Europe/Berlin", currency="EUR",
                                 plate_region="us", duplicate_window_s=0, barrier_mode="pull")
        entry = sites.create_lane(s, site, code="D-IN", name="In", direction="entry")
        exit_ = sites.create_lane(s, site, code="D-OUT", name="Out", direction="exit")
        out = {"key": sites.create_device(s, site, "drill").key, "entry": entry.code, "exit": exit_.code}
    ctx.close()
    return out


class Load:
    """Paced lane controllers; every request's send and reply time and outcome are kept."""

    def __init__(self, base: str, site: dict, plate_rate: float, frame_rate: float, frames: list[bytes]) -> None:
        self.base, self.site, self.frames = base, site, frames
        self.plate_rate, self.frame_rate = plate_rate, frame_rate
        self.lock = threading.Lock()
        self.log: list[dict] = []  # {id, sent, done, status, ms}
        self.stop = threading.Event()

    def _post(self, conn, lane: str, body: bytes, ctype: str, event_id: str) -> http.client.HTTPConnection:
        sent = time.time()
        t0 = time.perf_counter()
        try:
            conn.request("POST", f"/api/v1/lanes/{lane}/events", body=body,
                         headers={"Authorization": f"Bearer {self.site['key']}", "Content-Type": ctype})
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except OSError:
            conn = http.client.HTTPConnection(self.base, timeout=60)
            status = 0
        with self.lock:
            self.log.append({"id": event_id, "sent": sent, "done": time.time(), "status": status,
                             "ms": (time.perf_counter() - t0) * 1000})
        return conn

    def plates(self, wid: int, controllers: int) -> None:
        conn = http.client.HTTPConnection(self.base, timeout=60)
        interval = controllers * 2 / self.plate_rate  # each car is two events
        n = 0
        next_at = time.perf_counter()
        while not self.stop.is_set():
            plate = f"D{wid}{n:05d}"[:8]
            for lane, kind in ((self.site["entry"], "in"), (self.site["exit"], "out")):
                event_id = f"p-{wid}-{n}-{kind}"
                body = json.dumps({"event_id": event_id, "plate": plate, "confidence": 0.97}).encode()
                conn = self._post(conn, lane, body, "application/json", event_id)
            n += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))

    def photos(self) -> None:
        conn = http.client.HTTPConnection(self.base, timeout=60)
        n = 0
        while not self.stop.is_set():
            event_id = f"f-{n}"
            boundary = uuid.uuid4().hex
            lane = self.site["entry"] if n % 2 == 0 else self.site["exit"]
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"event_id\"\r\n\r\n{event_id}\r\n"
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"frame\"; filename=\"f.jpg\"\r\n"
                    f"Content-Type: image/jpeg\r\n\r\n").encode() + self.frames[n % len(self.frames)] \
                + f"\r\n--{boundary}--\r\n".encode()
            conn = self._post(conn, lane, body, f"multipart/form-data; boundary={boundary}", event_id)
            n += 1
            time.sleep(1.0 / self.frame_rate)

    def run(self, controllers: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.plates, args=(w, controllers)) for w in range(controllers)]
        if self.frame_rate > 0:
            threads.append(threading.Thread(target=self.photos))
        for t in threads:
            t.start()
        return threads


def latency(rows: list[dict]) -> dict:
    ms = [r["ms"] for r in rows if r["status"] == 200]
    if not ms:
        return {"requests": len(rows)}
    return {"requests": len(rows), "ok": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(percentile(ms, 0.99), 1)}


def _digest(rows) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps([str(v) if not isinstance(v, (dict, list)) else json.dumps(v, sort_keys=True)
                             for v in row]).encode())
    return h.hexdigest()


def compare(src_url: str, dst_url: str, src_evidence: Path, dst_evidence: Path, manifest: dict,
            log: list[dict], backup_started: float, backup_ended: float) -> dict:
    from sqlalchemy import create_engine, text

    from parkinglot.backup import census

    def engine(url: str):
        return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))

    src, dst = engine(src_url), engine(dst_url)
    out: dict = {}
    with src.connect() as s, dst.connect() as d:
        restored = census.take(d)
        source_now = census.take(s)
        recorded = manifest["tables"]
        out["tables"] = len(recorded)
        out["rows_in_backup"] = sum(recorded.values())
        out["table_count_mismatches"] = {t: (recorded[t], restored.tables.get(t)) for t in recorded
                                         if restored.tables.get(t) != recorded[t]
                                         and not (t == "audit_event" and restored.tables[t] == recorded[t] + 1)}
        out["rows_added_to_source_since"] = sum(source_now.tables.values()) - sum(recorded.values())
        head = manifest["audit_head"]["last_id"]
        q = text("SELECT id, hash FROM audit_event WHERE id <= :n ORDER BY id")
        src_chain, dst_chain = s.execute(q, {"n": head}).all(), d.execute(q, {"n": head}).all()
        out["audit_events_compared"] = len(dst_chain)
        out["audit_chain_sha256_equal"] = _digest(src_chain) == _digest(dst_chain) and len(dst_chain) == head
        out["audit_head_hash"] = manifest["audit_head"]["last_hash"]
        for table, cols in (("plate_read", READ_COLUMNS), ("decision", DECISION_COLUMNS)):
            ids = [r[0] for r in d.execute(text(f"SELECT id FROM {table} ORDER BY id"))]
            mine = d.execute(text(f"SELECT {cols} FROM {table} ORDER BY id")).all()
            theirs = []
            for i in range(0, len(ids), 5000):
                chunk = ids[i:i + 5000]
                theirs += s.execute(text(f"SELECT {cols} FROM {table} WHERE id IN ({','.join(map(str, chunk))}) "
                                         "ORDER BY id")).all()
            out[f"{table}_rows_compared"] = len(mine)
            out[f"{table}_sha256"] = _digest(mine)
            out[f"{table}_equal_to_source"] = _digest(mine) == _digest(theirs) and len(mine) == len(theirs)
        photos = d.execute(text("SELECT sha256, content_type FROM evidence WHERE purged_at IS NULL")).all()
        stored_event_ids = {r[0]: r[1] for r in d.execute(
            text("SELECT event_id, count(*) FROM plate_read GROUP BY event_id"))}
        out["restored_reads_without_a_decision"] = d.execute(text(
            "SELECT count(*) FROM plate_read r LEFT JOIN decision d ON d.read_id = r.id WHERE d.id IS NULL")).scalar()
    src.dispose()
    dst.dispose()
    files = {p.stem: p for p in dst_evidence.rglob("*") if p.is_file()}
    out["photos_in_database"] = len(photos)
    out["photo_files_restored"] = len(files)
    out["photo_files_missing"] = sum(1 for sha, _ in photos if sha not in files)
    bad = 0
    for sha, path in files.items():
        data = path.read_bytes()
        src_file = next(src_evidence.rglob(f"{sha}.*"), None)
        if hashlib.sha256(data).hexdigest() != sha or src_file is None or src_file.read_bytes() != data:
            bad += 1
    out["photo_files_not_matching"] = bad
    acked_before = [r["id"] for r in log if r["status"] == 200 and r["done"] < backup_started]
    sent_after = [r["id"] for r in log if r["sent"] > backup_ended]
    during = [r["id"] for r in log if r["status"] == 200 and r["done"] >= backup_started and r["sent"] <= backup_ended]
    out["acknowledged_while_backing_up"] = len(during)
    out["of_those_in_the_backup_once_or_absent"] = f"{sum(1 for e in during if stored_event_ids.get(e) == 1)} once, " \
        f"{sum(1 for e in during if e not in stored_event_ids)} absent, " \
        f"{sum(1 for e in during if (stored_event_ids.get(e) or 0) > 1)} twice"
    out["acknowledged_before_backup"] = len(acked_before)
    out["of_those_restored_exactly_once"] = sum(1 for e in acked_before if stored_event_ids.get(e) == 1)
    out["sent_after_backup"] = len(sent_after)
    out["of_those_in_the_backup"] = sum(1 for e in sent_after if e in stored_event_ids)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="postgresql", choices=["postgresql", "sqlite"])
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--backup-at", type=float, default=15)
    ap.add_argument("--plate-rate", type=float, default=30, help="plate events per second (entries and exits)")
    ap.add_argument("--frame-rate", type=float, default=0,
                    help="frame events per second, read by the real recogniser (0: none; its warm-up is minutes "
                         "on a busy 2-core host)")
    ap.add_argument("--history", type=int, default=300, help="demo stays with photos loaded before the load starts")
    ap.add_argument("--controllers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pl-drill-"))
    result: dict = {"db": args.db, "seconds": args.seconds, "backup_at": args.backup_at,
                    "plate_rate": args.plate_rate, "frame_rate": args.frame_rate, "history": args.history}

    def body(src_url: str, dst_url: str) -> None:
        src_instance, dst_instance = tmp / "source", tmp / "fresh"
        src_instance.mkdir()
        site = setup_site(src_url, src_instance, args.history)
        frames = load_frames(None, 20) if args.frame_rate else []
        with server(src_url, src_instance, args.workers, args.threads, warm=args.frame_rate > 0) as base:
            load = Load(base, site, args.plate_rate, args.frame_rate, frames)
            started = time.time()
            threads = load.run(args.controllers)
            time.sleep(args.backup_at)
            backup_started = time.time()
            took, out = cli(["backup", str(tmp / "backup")], instance_env(src_url, src_instance))
            backup_ended = time.time()
            time.sleep(max(0.0, args.seconds - (time.time() - started)))
            load.stop.set()
            for t in threads:
                t.join()
        manifest = json.loads((tmp / "backup" / "manifest.json").read_text())
        result["backup"] = {"seconds": round(took, 2), "files": len(manifest["files"]),
                            "bytes": sum(f["bytes"] for f in manifest["files"]),
                            "keys_included": manifest["keys"]["file"] == "keys.enc", "output": out.strip()}
        result["load"] = {
            "before_backup": latency([r for r in load.log if r["sent"] < backup_started]),
            "during_backup": latency([r for r in load.log if backup_started <= r["sent"] <= backup_ended]),
            "after_backup": latency([r for r in load.log if r["sent"] > backup_ended]),
            "non_200": sum(1 for r in load.log if r["status"] != 200),
        }
        dst_instance.mkdir()
        took, out = cli(["restore", str(tmp / "backup")], instance_env(dst_url, dst_instance))
        result["restore"] = {"seconds": round(took, 2), "output": out.strip().splitlines()[-3:]}
        result["compared"] = compare(src_url, dst_url, src_instance / "evidence", dst_instance / "evidence",
                                     manifest, load.log, backup_started, backup_ended)
        key = (dst_instance / "audit_plate_key").read_text().strip() == \
            (src_instance / "audit_plate_key").read_text().strip()
        result["compared"]["audit_plate_key_restored"] = key

    if args.db == "postgresql":
        with scratch_postgres() as src_url, scratch_postgres() as fresh:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            # a fresh machine has no database yet: the restore creates it (drop the empty one we were given)
            admin = create_engine(make_url(fresh).set(database="postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{make_url(fresh).database}"'))
            admin.dispose()
            body(src_url, fresh)
    else:
        body(f"sqlite:///{tmp / 'source' / 'parkinglot.db'}", f"sqlite:///{tmp / 'fresh' / 'parkinglot.db'}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
