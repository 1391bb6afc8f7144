"""Issue 6 benchmark: ``quote`` for a one-week stay (goal: p50 < 50 µs on a banded tariff).

    python benchmarks/tariff_quote.py [--runs 20000] [--json OUT]

Tariffs: the worked examples of tests/test_tariff_examples.py, rebuilt here so the
benchmark does not import the tests: ``airport`` (three duration bands, rolling 24 h
cap, free drop-off: the headline "banded tariff"), ``city`` (day / capped night /
Sunday and holiday bands, calendar-day cap) and ``mall`` (deducted free hour, two
bands, calendar day from 06:00). Stay: 7 days 17 min 33 s, Europe/Berlin.

Modes, per tariff, each call timed on its own (``perf_counter_ns``):

- ``warm``: the same stay again and again (local-time caches hot);
- ``varied``: 1,000 one-week stays spread over 2024 (DST weeks included), cycled after
  one untimed pass, so every date is cached but each call walks a different week;
- ``cold``: every cache emptied before each (untimed) call: the first quote of a new
  week in a fresh process, i.e. the engine without caches.

Output: ``{"goal_p50_us": 50, "headline": {...}, "results": {tariff: {mode: {...}}}}``.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentile, write_json  # noqa: E402
from parkinglot.billing.tariff import Tariff, clear_caches, quote  # noqa: E402

ZONE = ZoneInfo("Europe/Berlin")
UTC = timezone.utc
WEEK = timedelta(days=7, minutes=17, seconds=33)

TARIFFS = {
    "airport": {
        "currency": "EUR",
        "rates": {"standard": {"bands": [
            {"from_min": 0, "to_min": 60, "step_min": 30, "price": "2.50"},
            {"from_min": 60, "to_min": 240, "step_min": 60, "price": "4.00"},
            {"from_min": 240, "to_min": None, "step_min": 60, "price": "2.00"}]}},
        "week": {"mon-sun": "standard"},
        "daily_cap": {"amount": "30.00", "day": "rolling"},
        "free": {"minutes": 10, "mode": "threshold"},
        "exit_grace_min": 15,
        "lost_ticket": "60.00",
    },
    "city": {
        "currency": "EUR",
        "rates": {
            "day": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "3.00"}]},
            "night": {"cap": "5.00", "bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "1.00"}]},
            "sunday": {"bands": [{"from_min": 0, "to_min": None, "step_min": 60, "price": "1.50"}]},
        },
        "week": {
            "mon-sat": [{"from": "00:00", "to": "08:00", "rate": "night"},
                        {"from": "08:00", "to": "20:00", "rate": "day"},
                        {"from": "20:00", "to": "24:00", "rate": "night"}],
            "sun,holiday": [{"from": "00:00", "to": "08:00", "rate": "night"},
                            {"from": "08:00", "to": "20:00", "rate": "sunday"},
                            {"from": "20:00", "to": "24:00", "rate": "night"}],
        },
        "daily_cap": {"amount": "24.00", "day": "calendar", "change_at": "00:00"},
        "leniency_min": 5,
    },
    "mall": {
        "currency": "EUR",
        "rates": {"standard": {"bands": [
            {"from_min": 0, "to_min": 120, "step_min": 60, "price": "1.00"},
            {"from_min": 120, "to_min": None, "step_min": 60, "price": "2.00"}]}},
        "week": {"mon-sun": "standard"},
        "free": {"minutes": 60, "mode": "deducted"},
        "reentry_min": 30,
        "daily_cap": {"amount": "10.00", "day": "calendar", "change_at": "06:00"},
        "exit_grace_min": 10,
        "lost_ticket": "20.00",
    },
}


def _stats(ns: list[int]) -> dict:
    us = [v / 1000 for v in ns]
    return {"n": len(us), "p50_us": round(statistics.median(us), 2), "p95_us": round(percentile(us, 0.95), 2),
            "min_us": round(min(us), 2)}


def _time(calls, runs: int, before=None) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    k = len(calls)
    for i in range(runs):
        fn = calls[i % k]
        if before is not None:
            before()
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20000, help="timed calls per tariff and mode (cold: a tenth)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    entry = datetime(2024, 5, 6, 9, 13, 27, tzinfo=ZONE)
    entries = [datetime(2024, 1, 1, 7, 0, tzinfo=UTC) + timedelta(hours=8 * k + 3, minutes=k % 60)
               for k in range(1000)]  # every 8 h through 2024, both DST changes included
    results: dict[str, dict] = {}
    for name, rules in TARIFFS.items():
        tariff = Tariff.from_dict(rules)
        same = [lambda: quote(entry, entry.astimezone(UTC) + WEEK, tariff, ZONE)]
        varied = [lambda e=e: quote(e, e + WEEK, tariff, ZONE) for e in entries]
        sample = same[0]()
        for fn in varied:  # one untimed pass: every date's local boundaries cached
            fn()
        results[name] = {
            "amount": str(sample.amount), "lines": len(sample.lines),
            "warm": _stats(_time(same, args.runs)),
            "varied": _stats(_time(varied, args.runs)),
            "cold": _stats(_time(varied, max(200, args.runs // 10), before=clear_caches)),
        }
    head = results["airport"]["warm"]
    write_json(args.json, {
        "benchmark": "tariff_quote", "stay": "7 d 17 min 33 s, Europe/Berlin",
        "python": platform.python_version(), "machine": platform.machine(),
        "goal_p50_us": 50,
        "headline": {"tariff": "airport (3 duration bands, rolling 24 h cap)", "mode": "warm",
                     "p50_us": head["p50_us"], "runs": head["n"], "meets_goal": head["p50_us"] < 50},
        "results": results,
    })


if __name__ == "__main__":
    main()
