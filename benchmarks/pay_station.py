"""Issue 19 benchmark: the pay-station API at 1,000,000 stays.

    python benchmarks/pay_station.py [--stays 1000000] [--payments 1000000] [--n 300]
                                     [--backends sqlite,postgresql] [--json OUT]

Goals: a quote looked up by ticket or by plate, p50 < 10 ms; recording a payment,
p50 < 15 ms; on SQLite and on PostgreSQL.

The data (benchmarks/dataset.py, bulk-loaded) is one site with ``--stays`` stays over two
years and ``--payments`` payments. Every stay gets a ticket; the stays still inside
(~3% of the plates' last stays) are moved to have entered 10 min to 10 h ago under the
demo tariff, as a car at a pay station has. Timed through the Flask app in process
(``app.test_client()``: routing, the pay station's key, JSON, the transaction and
commit), so it is what a pay station waits for less the network:

- ``quote_by_ticket``: ``POST /api/v1/pay/quotes {"ticket": ...}``;
- ``quote_by_plate``: ``POST /api/v1/pay/quotes {"plate": ...}`` (the open stay of the plate);
- ``record_payment``: ``POST /api/v1/pay/payments`` with the amount due (each on another stay,
  quoted untimed first), so each one is a real payment, its audit event and its roll-up row;
- ``record_payment_retry``: the same request again (the idempotent replay).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, select, text, update  # noqa: E402

from benchmarks.common import scratch_postgres, summary, write_json  # noqa: E402
from benchmarks.dataset import build  # noqa: E402
from parkinglot.records import audit, migrate  # noqa: E402
from parkinglot.records.models import ParkingSession  # noqa: E402
from parkinglot.records.types import utcnow  # noqa: E402


def prepare(engine, factory, n_stays: int, n_payments: int, seed: int = 11) -> dict:
    """Bulk-load the site, give every stay a ticket, and make the open stays recent and priced."""
    from parkinglot.billing import tariffs
    from parkinglot.demo import DEMO_TARIFF
    from parkinglot.records import sites
    from parkinglot.records.models import Site

    info = build(engine, factory, stays=n_stays, payments=n_payments)
    with engine.begin() as conn:
        conn.execute(text("UPDATE parking_session SET ticket = 'T' || CAST(id AS VARCHAR(20))"))
    rng = random.Random(seed)
    now = utcnow()
    with factory() as s:
        site = s.get(Site, info["site_id"])
        version = tariffs.create_version(s, site, code="bench", name="Bench tariff",
                                         rules={**DEMO_TARIFF, "currency": "EUR"},
                                         effective_from=now - timedelta(days=800), make_default=True)
        key = sites.create_device(s, site, "bench pay station", kind="pay_station").key
        open_ids = list(s.scalars(select(ParkingSession.id).where(ParkingSession.site_id == site.id,
                                                                  ParkingSession.status == "open")))
        t = ParkingSession.__table__
        s.connection().execute(
            update(t).where(t.c.id == bindparam("sid")).values(entered_at=bindparam("at"), created_at=bindparam("at"),
                                                               tariff_version_id=version.id),
            [{"sid": sid, "at": now - timedelta(minutes=rng.randint(10, 600))} for sid in open_ids])
        open_stays = [(sid, t, p) for sid, t, p in s.execute(
            select(ParkingSession.id, ParkingSession.ticket, ParkingSession.plate)
            .where(ParkingSession.id.in_(open_ids)))]
        s.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    rng.shuffle(open_stays)
    return {**info, "key": key, "open": open_stays}


def timed(fn, n: int, warmup: int) -> dict:
    """Wall-time summary of ``n`` calls after ``warmup``, and the process CPU per call (on a
    shared machine the CPU figure is what the code costs; the wall time adds the queue)."""
    for i in range(warmup):
        fn(i)
    out, cpu = [], 0.0
    for i in range(warmup, warmup + n):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
        cpu += time.process_time() - c0
    return {**summary(out), "cpu_ms_per_call": round(cpu * 1000 / n, 3)}


def run_backend(url: str, tmp: Path, n_stays: int, n_payments: int, n: int) -> dict:
    from parkinglot.db import make_engine, make_session_factory
    from parkinglot.web import create_app

    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine, info=audit.session_info(b"benchmark-audit-plate-key"))
    t0 = time.perf_counter()
    data = prepare(engine, factory, n_stays, n_payments)
    load_s = time.perf_counter() - t0
    engine.dispose()
    app = create_app({"INSTANCE_PATH": str(tmp / "instance"), "DATABASE_URL": url,
                      "EVIDENCE_DIR": str(tmp / "evidence"), "SECRET_KEY": "bench", "LOG_LEVEL": "WARNING"})
    logging.getLogger("parkinglot").setLevel(logging.WARNING)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {data['key']}"}
    stays = data["open"]
    warmup = 5
    need = 2 * (n + warmup)
    if len(stays) < need:
        raise SystemExit(f"only {len(stays)} open stays; need {need} (use more --stays or a smaller --n)")

    def post(path: str, body: dict, status: int = 200) -> dict:
        r = client.post(path, json=body, headers=headers)
        if r.status_code != status:
            raise SystemExit(f"{path} {body}: HTTP {r.status_code} {r.get_data(as_text=True)[:300]}")
        return r.get_json()

    def by_ticket(i: int) -> None:
        q = post("/api/v1/pay/quotes", {"ticket": stays[i][1]})
        assert q["stay_id"] == stays[i][0]

    def by_plate(i: int) -> None:
        q = post("/api/v1/pay/quotes", {"plate": stays[i][2]})
        assert q["stay_id"] == stays[i][0]

    # payments: on the second half of the open stays, each quoted (untimed) just before
    pay_stays = stays[n + warmup:]
    bodies: dict[int, dict] = {}

    def pay(i: int) -> None:
        body = bodies[i]
        receipt = post("/api/v1/pay/payments", body, 201)
        assert receipt["amount"] == body["amount"]

    def pay_timed() -> dict:
        out, cpu = [], 0.0
        candidates = iter(pay_stays)
        for i in range(n + warmup):
            due = "0.00"
            while due == "0.00":  # a stay still inside its free time owes nothing: take the next one
                sid = next(candidates)[0]
                due = post("/api/v1/pay/quotes", {"stay_id": sid})["amount_due"]
            bodies[i] = {"stay_id": sid, "amount": due, "method": "card", "idempotency_key": f"bench-{i}",
                         "terminal_ref": f"EMV{i}"}
            c0, t0 = time.process_time(), time.perf_counter()
            pay(i)
            if i >= warmup:
                out.append((time.perf_counter() - t0) * 1000)
                cpu += time.process_time() - c0
        return {**summary(out), "cpu_ms_per_call": round(cpu * 1000 / n, 3)}

    load_before = round(os.getloadavg()[0], 2)
    results = {
        "quote_by_ticket": timed(by_ticket, n, warmup),
        "quote_by_plate": timed(by_plate, n, warmup),
        "record_payment": pay_timed(),
        "record_payment_retry": timed(pay, n, warmup),
    }
    with app.extensions["parkinglot"].sessions() as s:
        from parkinglot.records import revenue_rollup

        rollup_ok = revenue_rollup.differences(s, data["site_id"]) == {}
    app.extensions["parkinglot"].close()
    return {
        "dataset": {"stays": n_stays, "payments": n_payments, "open_stays": len(stays)},
        "load_seconds": round(load_s, 1),
        "machine": {"cpus": os.cpu_count(), "load_average_1m_before": load_before,
                    "load_average_1m_after": round(os.getloadavg()[0], 2)},
        "rollup_verified_after": rollup_ok,
        **results,
        "goals_met": results["quote_by_ticket"]["p50_ms"] < 10 and results["quote_by_plate"]["p50_ms"] < 10
        and results["record_payment"]["p50_ms"] < 15,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stays", type=int, default=1_000_000)
    ap.add_argument("--payments", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=300, help="timed calls per operation")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    results = {}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                results["sqlite"] = run_backend(f"sqlite:///{tmp}/bench.db", Path(tmp), args.stays, args.payments,
                                                args.n)
            elif backend == "postgresql":
                with scratch_postgres() as url:
                    results["postgresql"] = run_backend(url, Path(tmp), args.stays, args.payments, args.n)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
