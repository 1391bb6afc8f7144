"""Run every benchmark, one after the other, writing JSON into benchmarks/results/.

    python3 dev.py bench [--quick] [--data ../shared/data] [--only NAME[,NAME]]

``--quick`` shrinks the datasets (100k rows instead of 1M, short load tests) for a smoke
run; the figures quoted in the issues come from the full sizes. Benchmarks that need the
labelled photos are skipped (with a message) when ``--data`` does not exist.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def plan(data: Path, quick: bool) -> list[tuple[str, list[str], bool]]:
    """(name, arguments, needs the photos)"""
    rows = 100_000 if quick else 1_000_000
    plates = data / "plates"
    crops = data / "plate-crops" / "us"
    return [
        ("tariff_quote", ["benchmarks/tariff_quote.py", "--runs", "2000" if quick else "20000"], False),
        ("kernels", ["benchmarks/kernels.py"], False),
        ("records_store", ["benchmarks/records_store.py", "--stays", str(rows)], False),
        ("revenue_report", ["benchmarks/revenue_report.py", "--payments", str(rows)], False),
        ("console_pages", ["benchmarks/console_pages.py", "--stays", str(rows)], False),
        ("pay_station", ["benchmarks/pay_station.py", "--stays", str(rows), "--payments", str(rows),
                         "--n", "100" if quick else "300"], False),
        ("locate_recall", ["benchmarks/locate_recall.py", "--data", str(plates)], True),
        ("crop_accuracy", ["benchmarks/crop_accuracy.py", "--data", str(crops), "--split", "val"], True),
        ("lpr_accuracy_val", ["benchmarks/lpr_accuracy.py", "--data", str(plates), "--split", "val"], True),
        ("lpr_accuracy_all", ["benchmarks/lpr_accuracy.py", "--data", str(plates)], True),
        ("lpr_latency", ["benchmarks/lpr_latency.py", "--data", str(plates)], True),
        ("lane_event_cpu", ["benchmarks/lane_event_cpu.py", "--events", "500" if quick else "2000"], False),
        ("lane_load", ["benchmarks/lane_load.py", "--data", str(plates)]
         + (["--plates-seconds", "10", "--frames-seconds", "10"] if quick else []), True),
        ("lane_load_priced", ["benchmarks/lane_load.py", "--priced", "--frames-seconds", "0"]
         + (["--plates-seconds", "10"] if quick else []), False),
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", help="comma-separated benchmark names")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    failed = []
    for name, cmd, needs_data in plan(args.data, args.quick):
        if only and name not in only:
            continue
        if needs_data and not (args.data / "plates").is_dir():
            print(f"[bench] {name}: skipped, no labelled photos under {args.data}", flush=True)
            continue
        out = RESULTS / f"{name}.json"
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, *cmd, "--json", str(out)], cwd=ROOT)
        status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
        print(f"[bench] {name}: {status} in {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
        if proc.returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
