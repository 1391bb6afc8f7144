"""Issue 7 benchmark: every console page renders in < 200 ms p50 with 1,000,000 stays.

    python benchmarks/console_pages.py [--stays 1000000] [--requests 25] [--backends sqlite,postgresql] [--json OUT]

The data: ``benchmarks/dataset.build`` (a site with N stays over two years and N
payments), then, in bulk, what those stays leave behind in the other tables: an
entry and an exit read and decision per stay (2N reads, 2N decisions, linked to the
stays), alerts, shifts with manual opens, permits, visitor passes, hotlist entries
and disputes. On top, a few real records made through the services (lane events
with photos, a paid stay, a dispute), so the stay, alert and dispute pages show
everything they can.

Each page is requested ``--requests`` times through the Flask test client, logged
in as a role that may see it (the whole request: auth, queries, template, security
headers), after two warm-up requests; the p50 is the goal.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, text  # noqa: E402

from benchmarks.common import scratch_postgres, summary, write_json  # noqa: E402
from benchmarks.dataset import _bulk, build, random_plate  # noqa: E402
from parkinglot.db import make_engine, make_session_factory  # noqa: E402
from parkinglot.records import audit, migrate, users  # noqa: E402
from parkinglot.records.models import (  # noqa: E402
    Alert, Decision, Dispute, HotlistEntry, ParkingSession, Permit, PermitVehicle, PlateRead, Shift, Site, VisitorPass,
)

GOAL_MS = 200.0
PASSWORD = "bench-console-1"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _rows_json(engine, rows, json_positions: tuple[int, ...]):
    """JSON columns: Python values for SQLAlchemy (SQLite), JSON text for COPY (PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        yield from rows
        return
    for row in rows:
        row = list(row)
        for i in json_positions:
            row[i] = json.dumps(row[i])
        yield tuple(row)


def _setval(engine, tables) -> None:
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in tables:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))


def history(engine, factory, info: dict, seed: int = 11) -> dict:
    """What the stays leave behind: reads and decisions per stay, alerts, shifts, permits, passes, disputes."""
    rng = random.Random(seed)
    site_id, lane_ids = info["site_id"], info["lane_ids"]
    pool = info["pool"]
    _setval(engine, ("app_user",))  # dataset.build inserts user 1 with an explicit id
    with factory() as s:
        stays = s.execute(select(ParkingSession.id, ParkingSession.plate, ParkingSession.entered_at,
                                 ParkingSession.exited_at, ParkingSession.entry_lane_id, ParkingSession.exit_lane_id)
                          .order_by(ParkingSession.id)).all()
        site = s.get(Site, site_id)
        site.kpi_targets = {"read_rate": 0.95, "attendant_share": 0.05, "ack_minutes": 5, "dispute_days": 7}
        site.capacity = None  # ~3% of a million plates are still inside: more than any garage holds
        for zone in site.zones:
            zone.capacity = None
        people = []
        for name, role in (("att", "attendant"), ("sup", "supervisor"), ("fin", "finance"), ("adm", "admin")):
            u = users.create_user(s, username=f"bench-{name}", password=PASSWORD, role=role,
                                  sites=[site] if role in ("attendant", "supervisor") else [])
            people.append(u.id)
        s.commit()
    att_id, sup_id = people[0], people[1]

    box = [[10, 10], [110, 10], [110, 40], [10, 40]]
    timings = {"total_ms": 70.0}

    def events_of_stays():
        """(read id, stay, lane, time, low confidence?) for each entry and exit; deterministic per read."""
        for sid, plate, entered, exited, in_lane, out_lane in stays:
            for k, (at, lane) in enumerate(((entered, in_lane), (exited, out_lane))):
                if at is not None:
                    rid = 2 * sid - 1 + k
                    yield rid, sid, plate, lane, at, k, (rid * 2654435761) % 100 < 3

    def reads():
        for rid, _sid, plate, lane, at, _k, low in events_of_stays():
            conf = 0.45 if low else 0.82 + (rid % 17) / 100
            yield (rid, site_id, lane, at, at + timedelta(milliseconds=80), plate, plate, conf,
                   [{"text": plate[:-1] + "8", "confidence": 0.04}], box, "us", "pipeline", timings)

    def decisions():
        for rid, sid, _plate, lane, at, k, low in events_of_stays():
            yield (rid, rid, site_id, lane, "attendant" if low else "open",
                   "low_confidence" if low else ("visitor" if k == 0 else "exact_plate"), "", sid, "rule", {},
                   at + timedelta(milliseconds=90))

    read_cols = ["id", "site_id", "lane_id", "captured_at", "received_at", "raw_text", "plate", "confidence",
                 "candidates", "box", "region", "source", "timings"]
    dec_cols = ["id", "read_id", "site_id", "lane_id", "outcome", "reason", "message", "session_id", "actor",
                "response", "created_at"]
    _bulk(engine, PlateRead, read_cols, _rows_json(engine, reads(), (8, 9, 12)))
    _bulk(engine, Decision, dec_cols, _rows_json(engine, decisions(), (9,)))
    n_reads = sum(1 for _ in events_of_stays())
    with engine.begin() as conn:
        conn.execute(text("UPDATE parking_session SET entry_read_id = 2 * id - 1, "
                          "exit_read_id = CASE WHEN exited_at IS NULL THEN NULL ELSE 2 * id END"))

    # shifts: three a day, each with a few manual opens (decisions without a read)
    first, last = stays[0][2], stays[-1][2]
    shift_rows, manual_rows = [], []
    t, shift_id, dec_id = first.replace(hour=6, minute=0, second=0, microsecond=0), 0, 2 * len(stays) + 10
    while t < last:
        shift_id += 1
        end = t + timedelta(hours=8)
        shift_rows.append((shift_id, att_id if shift_id % 3 else sup_id, site_id, t, end, "", "handover notes"))
        for _ in range(rng.randint(0, 4)):
            dec_id += 1
            manual_rows.append((dec_id, None, site_id, rng.choice(lane_ids), "open", "manual_open", "ticket jam",
                                None, "user", shift_rows[-1][1], shift_id, {}, t + timedelta(minutes=rng.randint(1, 470))))
        t = end
    _bulk(engine, Shift, ["id", "user_id", "site_id", "started_at", "ended_at", "start_note", "handover_note"], shift_rows)
    _bulk(engine, Decision, dec_cols[:8] + ["actor", "user_id", "shift_id", "response", "created_at"],
          _rows_json(engine, manual_rows, (11,)))

    # alerts: one exit in 200 has no entry; older ones resolved, the last few days' still open
    alert_rows = []
    for i, (sid, plate, entered, exited, _, out_lane) in enumerate(stays):
        if exited is None or i % 200:
            continue
        age_days = (last - exited).days
        status = "resolved" if age_days > 3 else rng.choice(["open", "acknowledged", "resolved"])
        ack = exited + timedelta(minutes=rng.randint(1, 15)) if status != "open" else None
        alert_rows.append((len(alert_rows) + 1, site_id, out_lane, "no_entry", status, plate,
                           f"Exit attempt by {plate} with no matching entry", 2 * sid, exited, ack,
                           att_id if ack else None, ack if status == "resolved" else None,
                           att_id if status == "resolved" else None, "checked" if status == "resolved" else None))
    _bulk(engine, Alert, ["id", "site_id", "lane_id", "kind", "status", "plate", "message", "read_id", "created_at",
                          "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "resolve_note"], alert_rows)

    # permits, visitor passes, hotlist, disputes
    permit_rows, vehicle_rows, pass_rows = [], [], []
    for n in range(1, 2001):
        valid_from = first + timedelta(days=rng.randint(0, 600))
        permit_rows.append((n, site_id, f"P-{100000 + n}", 1, f"Tenant {n}", "active", valid_from,
                            valid_from + timedelta(days=365), None, None, valid_from))
        for plate in {pool[(n * 7 + k) % len(pool)] for k in range(rng.choice([1, 2]))}:
            vehicle_rows.append((n, plate))
    for n in range(1, 5001):
        start = first + timedelta(hours=rng.randint(0, 17000))
        pass_rows.append((n, site_id, random_plate(rng), start, start + timedelta(hours=rng.randint(2, 48)), "visitor",
                          start))
    _bulk(engine, Permit, ["id", "site_id", "number", "version", "holder", "status", "valid_from", "valid_to", "hours",
                           "rate", "created_at"], _rows_json(engine, permit_rows, ()))
    _bulk(engine, PermitVehicle, ["permit_id", "plate"], vehicle_rows)
    _bulk(engine, VisitorPass, ["id", "site_id", "plate", "valid_from", "valid_to", "note", "created_at"], pass_rows)
    _bulk(engine, HotlistEntry, ["id", "site_id", "plate", "reason", "source", "created_at"],
          [(n, site_id, random_plate(rng), "stolen", "police", first) for n in range(1, 501)])
    dispute_rows = []
    for n, (sid, *_rest) in enumerate(stays[::500][:2000], start=1):
        opened = _rest[2] or _rest[1]
        resolved = n % 4 != 0
        dispute_rows.append((n, site_id, sid, "resolved" if resolved else "open", "fee too high", {}, opened,
                             att_id, "uphold" if resolved else None, "checked" if resolved else None,
                             opened + timedelta(days=rng.randint(1, 10)) if resolved else None,
                             sup_id if resolved else None))
    _bulk(engine, Dispute, ["id", "site_id", "session_id", "status", "reason", "evidence", "opened_at", "opened_by",
                            "outcome", "resolution_note", "resolved_at", "resolved_by"],
          _rows_json(engine, dispute_rows, (5,)))
    _setval(engine, ("plate_read", "decision", "shift", "alert", "permit", "visitor_pass", "hotlist_entry", "dispute"))
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return {"reads": n_reads, "decisions": n_reads + len(manual_rows), "shifts": len(shift_rows),
            "alerts": len(alert_rows), "permits": len(permit_rows), "visitor_passes": len(pass_rows),
            "disputes": len(dispute_rows)}


def real_records(app, info: dict) -> dict:
    """A few records made the way production makes them: lane events with photos, a payment, a dispute."""
    from parkinglot.barrier import events
    from parkinglot.billing import disputes, fees, payments, tariffs
    from parkinglot.db import transaction
    from parkinglot.demo import DEMO_TARIFF, render_frame
    from parkinglot.records.types import utcnow

    ctx = app.extensions["parkinglot"]
    rng = random.Random(5)
    now = utcnow().replace(microsecond=0)
    out = {}
    with transaction(ctx.sessions) as s:
        site = s.get(Site, info["site_id"])
        tariffs.create_version(s, site, code="bench", name="Bench tariff", rules={**DEMO_TARIFF, "currency": "EUR"},
                               effective_from=now - timedelta(days=1), make_default=True)
    lanes = info["lane_ids"]

    def event(lane_id, plate, at, eid):
        reading = events.Reading(plate=plate, raw_text=plate, confidence=0.95, alternatives=((plate[:-1] + "8", 0.04),),
                                 box=[[475, 450], [685, 450], [685, 550], [475, 550]], source="pipeline")
        ev = events.LaneEvent(lane_id=lane_id, captured_at=at, received_at=at, reading=reading, event_id=eid,
                              frames=(events.Frame(render_frame(plate, rng), "image/jpeg", 1280, 720),))
        with transaction(ctx.sessions) as s:
            return events.process(s, ctx.evidence, ev).reply

    stay_id = event(lanes[0], "REAL1", now - timedelta(hours=3), "bench-real-in").session_id
    assert stay_id is not None, "the real entry was refused"
    with transaction(ctx.sessions) as s:
        site, stay = s.get(Site, info["site_id"]), s.get(ParkingSession, stay_id)
        due = fees.fee_status(s, site, stay, now - timedelta(hours=1, minutes=5))
        if due.due_minor > 0 and due.paid_minor == 0:  # (already paid when the database is reused)
            payments.record_payment(s, site, amount_minor=due.due_minor, method="card", reference="bench-real-pay",
                                    stay=stay, paid_until=due.paid_until)
    event(lanes[2], "REAL1", now - timedelta(hours=1), "bench-real-out")
    theft = event(lanes[3], "NOENTRY1", now - timedelta(minutes=5), "bench-real-theft")
    event(lanes[1], "INSIDE1", now - timedelta(minutes=30), "bench-real-inside")
    with transaction(ctx.sessions) as s:
        d = disputes.open_for(s, stay_id) or disputes.open_dispute(s, s.get(ParkingSession, stay_id), user_id=None,
                                                                   reason="the barrier was stuck")
        out["dispute"] = d.id
        out["alert"] = s.scalar(select(Alert.id).where(Alert.read_id == theft.read_id))
    out["stay"] = stay_id
    return out


def pages(info: dict, real: dict) -> dict[str, list[str]]:
    plate = info["pool"][17]
    lane = "B-OUT0"
    return {
        "bench-att": ["/dashboard", "/live.json", "/live.json?token={token}", "/stays", f"/stays?q={plate}",
                      f"/stays?q={plate[:3]}&mode=prefix", f"/stays?q={plate[:-1]}8&mode=fuzzy",
                      "/stays?start=2026-06-01T00:00&end=2026-06-08T00:00", f"/stays?lane={lane}",
                      "/stays?status=open", "/stays?page=20", f"/stays/{real['stay']}", f"/stays/{info['stays'] // 2}", "/lanes",
                      "/alerts", "/alerts?state=resolved", f"/alerts/{real['alert']}", "/hotlist", "/permits",
                      "/permits/BENCH/P-100017", "/passes", "/passes?show=expired", "/disputes",
                      f"/disputes/{real['dispute']}", "/shift"],
        "bench-sup": ["/kpis", "/kpis?start={d30}", "/shifts", "/permits/new"],
        "bench-fin": ["/revenue", "/revenue?group_by=week&start={d90}", "/revenue?group_by=month&start={d365}",
                      "/revenue/reconciliation", "/revenue/reconciliation?start={d7}"],
        "bench-adm": ["/users", "/users/new"],
    }


def login(client, username: str) -> None:
    page = client.get("/login")
    token = TOKEN.search(page.text).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302, (username, r.status_code)


def measure(app, info: dict, real: dict, n: int) -> dict:
    from parkinglot.records.activity import change_token
    from parkinglot.records.types import utcnow

    ctx = app.extensions["parkinglot"]
    with ctx.sessions() as s:
        token = change_token(s)
    today = utcnow().date()
    fill = {"token": token, "d7": (today - timedelta(days=6)).isoformat(), "d30": (today - timedelta(days=29)).isoformat(),
            "d90": (today - timedelta(days=89)).isoformat(), "d365": (today - timedelta(days=364)).isoformat()}
    results = {}
    for user, paths in pages(info, real).items():
        client = app.test_client()
        login(client, user)
        for raw in paths:
            path = raw.format(**fill)
            for _ in range(2):
                r = client.get(path)
                assert r.status_code == 200, (user, path, r.status_code, r.text[:300])
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
            results[raw] = {**summary(times), "role": user.split("-")[1], "bytes": len(r.data)}
            flag = "" if results[raw]["p50_ms"] < GOAL_MS else "  <-- over the goal"
            print(f"  {raw:60s} p50 {results[raw]['p50_ms']:8.1f} ms  p95 {results[raw]['p95_ms']:8.1f} ms{flag}",
                  flush=True)
    return results


def run_backend(url: str, n_stays: int, n: int, instance: Path, saved: Path | None = None) -> dict:
    """Build (or, with ``saved``, reuse a SQLite file built before), then time every page."""
    from parkinglot.web import create_app

    engine = make_engine(url)
    t0 = time.perf_counter()
    if saved is not None and saved.with_suffix(".json").exists():
        info, extra = json.loads(saved.with_suffix(".json").read_text()).values()
    else:
        migrate.upgrade(engine)
        factory = make_session_factory(engine, info=audit.session_info(b"benchmark-audit-plate-key"))
        info = build(engine, factory, stays=n_stays, payments=n_stays)
        extra = history(engine, factory, info)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        if saved is not None:
            saved.with_suffix(".json").write_text(json.dumps({"info": info, "extra": extra}, default=str))
    load_s = time.perf_counter() - t0
    engine.dispose()
    app = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": url, "SECRET_KEY": "bench",
                      "EVIDENCE_DIR": str(instance / "evidence"), "WARM_RECOGNIZER": False})
    try:
        real = real_records(app, info)
        print(f"{engine.dialect.name}: {n_stays} stays loaded in {load_s:.0f} s; {extra}", flush=True)
        results = measure(app, info, real, n)
    finally:
        app.extensions["parkinglot_dispatcher"].drain()
        app.extensions["parkinglot"].close()
    over = {k: v["p50_ms"] for k, v in results.items() if v["p50_ms"] >= GOAL_MS}
    return {"dataset": {"stays": n_stays, "payments": n_stays, **extra}, "load_seconds": round(load_s, 1),
            "pages": results, "slowest_p50_ms": max(v["p50_ms"] for v in results.values()),
            "goal_p50_ms": GOAL_MS, "over_goal": over}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stays", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=25)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--json")
    ap.add_argument("--sqlite-file", type=Path,
                    help="keep the SQLite database here and reuse it on the next run (the real records are added again)")
    args = ap.parse_args(argv)
    results = {}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                path = args.sqlite_file.resolve() if args.sqlite_file else Path(tmp) / "bench.db"
                results["sqlite"] = run_backend(f"sqlite:///{path}", args.stays, args.requests, Path(tmp),
                                                saved=args.sqlite_file.resolve() if args.sqlite_file else None)
            elif backend == "postgresql":
                with scratch_postgres() as url:
                    results["postgresql"] = run_backend(url, args.stays, args.requests, Path(tmp))
    write_json(args.json, results)


if __name__ == "__main__":
    main()
