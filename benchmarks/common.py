"""Helpers shared by the benchmarks: timing, percentiles, databases, JSON output."""
from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("PARKINGLOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def time_calls(fn: Callable[[], object], n: int, warmup: int = 3) -> list[float]:
    """Wall time of ``n`` calls in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 4), "p95_ms": round(percentile(ms, 0.95), 4),
            "p99_ms": round(percentile(ms, 0.99), 4)}


@contextmanager
def scratch_postgres(keep: bool = False) -> Iterator[str]:
    """A database of our own on the local server, dropped afterwards."""
    name = f"parkinglot_bench_{uuid.uuid4().hex[:8]}"
    # pre-ping: the soak restarts the server mid-run, and the drop must still happen afterwards
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_json(path: str | None, data: dict) -> None:
    text_ = json.dumps(data, indent=2, default=str)
    print(text_)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text_ + "\n")
