"""Issue 6 benchmark: a monthly revenue report over 1,000,000 payments.

    python benchmarks/revenue_report.py [--payments 1000000] [--stays N] [--runs 7]
                                        [--backends sqlite,postgresql] [--json OUT] [--sqlite-file PATH]

The dataset (benchmarks/dataset.py) spreads the payments over two years of one
site in Europe/Berlin. Timed, each as the p50 of ``--runs`` runs after a warm-up,
through a read-only session as the web layer uses:

- ``month_by_day_and_method`` (the goal: < 1 s on PostgreSQL, < 2 s on SQLite):
  revenue for one calendar month grouped by local day, plus the split by method;
- ``month_full_report``: what ``GET /reports/revenue?group_by=day`` computes: the
  above plus the lane split, reconciliation (billed vs paid, open balances) and
  occupancy (peak via a window function);
- ``all_payments_by_month``: every one of the payments, two years grouped by month
  (the range limit lifted), to show how the aggregation scales.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text  # noqa: E402

from benchmarks.common import scratch_postgres, summary, time_calls, write_json  # noqa: E402
from benchmarks.dataset import build, table_sizes  # noqa: E402
from parkinglot.billing import reports  # noqa: E402
from parkinglot.db import make_engine, make_session_factory, read_only_engine  # noqa: E402
from parkinglot.records import audit, migrate  # noqa: E402
from parkinglot.records.models import Payment, Site  # noqa: E402

MONTH = (date(2025, 6, 1), date(2025, 6, 30))
ALL = (date(2024, 12, 31), date(2027, 1, 1))


def run_backend(url: str, n_payments: int, n_stays: int, runs: int) -> dict:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine, info=audit.session_info(b"benchmark-audit-plate-key"))
    t0 = time.perf_counter()
    info = build(engine, factory, stays=n_stays, payments=n_payments)
    load_s = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":
        # what autovacuum does shortly after a bulk load: lets index-only scans skip the heap
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE payment"))
            conn.execute(text("VACUUM ANALYZE parking_session"))
    session = make_session_factory(read_only_engine(engine))()
    site = session.get(Site, info["site_id"])
    site_id = site.id

    def fresh_site() -> Site:
        session.rollback()
        return session.get(Site, site_id)

    in_month = session.scalar(select(func.count()).select_from(Payment).where(
        Payment.site_id == site_id, Payment.created_at >= reports.period(site, *MONTH).start,
        Payment.created_at < reports.period(site, *MONTH).end))

    def month_by_day_and_method():
        rv = reports.revenue(session, fresh_site(), *MONTH, group_by="day", splits=("method",))
        assert len(rv.rows) == 30 and rv.totals.payments + rv.totals.refunds == in_month

    def month_full_report():
        rep = reports.report(session, fresh_site(), *MONTH, group_by="day")
        assert rep.revenue.totals.payments + rep.revenue.totals.refunds == in_month and rep.occupancy.stays_entered > 0

    def all_payments_by_month():
        rv = reports.revenue(session, fresh_site(), *ALL, group_by="month", splits=("method",), max_days=800)
        assert rv.totals.payments + rv.totals.refunds == n_payments

    timings = {
        "month_by_day_and_method": summary(time_calls(month_by_day_and_method, runs, warmup=2)),
        "month_full_report": summary(time_calls(month_full_report, runs, warmup=2)),
        "all_payments_by_month": summary(time_calls(all_payments_by_month, max(3, runs // 2), warmup=1)),
    }
    session.close()
    sizes = table_sizes(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            sizes["payment"]["indexes"] = dict(conn.execute(text(
                "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
                "WHERE relname = 'payment' ORDER BY indexrelname")).all())
    engine.dispose()
    return {
        "dataset": {"payments": n_payments, "stays": n_stays, "payments_in_month": in_month,
                    "month": f"{MONTH[0]}..{MONTH[1]}", "site_timezone": "Europe/Berlin"},
        "load_seconds": round(load_s, 1),
        "machine": {"cpus": os.cpu_count(), "load_average_1m_after": round(os.getloadavg()[0], 2)},
        "sizes": sizes,
        **timings,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payments", type=int, default=1_000_000)
    ap.add_argument("--stays", type=int, default=None, help="default: as many as payments")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--sqlite-file", help="keep the SQLite database here instead of a temporary directory")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    stays = args.stays or args.payments
    results = {}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            if args.sqlite_file:
                Path(args.sqlite_file).unlink(missing_ok=True)
                results["sqlite"] = run_backend(f"sqlite:///{args.sqlite_file}", args.payments, stays, args.runs)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    results["sqlite"] = run_backend(f"sqlite:///{tmp}/bench.db", args.payments, stays, args.runs)
        elif backend == "postgresql":
            with scratch_postgres() as url:
                results["postgresql"] = run_backend(url, args.payments, stays, args.runs)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
