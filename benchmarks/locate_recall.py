"""Localisation recall and latency of ``parkinglot.lpr.locate`` on a labelled folder.

Layout: DIR/<region>/<image>.jpg with <image>.txt next to it holding one line
``<image>\\t<x>\\t<y>\\t<w>\\t<h>\\t<PLATE>``. A frame counts as found when one of the
top-K candidates' axis boxes has IoU >= 0.5 with the label box. Only the box is
used; the plate text is never read.

    python benchmarks/locate_recall.py --data ../shared/data/plates [--region us]
        [--top-k 5] [--json OUT] [--dump /tmp/crops]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lpr_data import iou as _iou, parse_label  # noqa: E402
from parkinglot.lpr.locate import locate_timed  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


def run(data: Path, regions: list[str], top_k: int, dump: Path | None) -> dict:
    # warm-up: numba compile / cache load is not a per-frame cost
    locate_timed(np.zeros((64, 96, 3), np.uint8), top_k=top_k)
    report: dict = {"top_k": top_k, "regions": {}}
    all_hits = 0
    all_n = 0
    all_lat: list[float] = []
    all_pre: list[float] = []
    for region in regions:
        imgs = sorted((data / region).glob("*.jpg"))
        hits, ranks, lat, pre, misses = 0, [], [], [], []
        for img_path in imgs:
            txt = img_path.with_suffix(".txt")
            if not txt.exists():
                continue
            frame = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            parsed = parse_label(txt)
            if parsed is None:
                continue
            label = parsed[1]
            t0 = time.perf_counter()
            cands, timings = locate_timed(frame, top_k=top_k)
            lat.append((time.perf_counter() - t0) * 1e3)
            pre.append(timings["preprocess_ms"])
            rank = next((i for i, c in enumerate(cands) if _iou(c.axis_box(), label) >= 0.5), None)
            if rank is None:
                misses.append(img_path.name)
            else:
                hits += 1
                ranks.append(rank + 1)
            if dump is not None:
                out = dump / region
                out.mkdir(parents=True, exist_ok=True)
                for i, c in enumerate(cands):
                    mark = "HIT" if rank == i else "c"
                    cv2.imwrite(str(out / f"{img_path.stem}_{i}_{mark}_{c.polarity}_{c.source}.png"), c.crop)
        n = len(lat)
        report["regions"][region] = {
            "n": n, "recall": hits / n if n else float("nan"),
            "mean_rank": statistics.mean(ranks) if ranks else float("nan"),
            "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95), "preprocess_p50_ms": _pct(pre, 50),
            "misses": misses,
        }
        all_hits += hits
        all_n += n
        all_lat += lat
        all_pre += pre
    report["overall"] = {"n": all_n, "recall": all_hits / all_n if all_n else float("nan"),
                         "p50_ms": _pct(all_lat, 50), "p95_ms": _pct(all_lat, 95),
                         "preprocess_p50_ms": _pct(all_pre, 50)}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with one subfolder per region")
    ap.add_argument("--region", action="append", help="region subfolder (repeatable; default: all)")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument("--dump", type=Path, help="write candidate crops here (outside the repo)")
    args = ap.parse_args(argv)
    regions = args.region or sorted(d.name for d in args.data.iterdir() if d.is_dir())
    rep = run(args.data, regions, args.top_k, args.dump)
    print(f"top-K = {rep['top_k']}")
    print(f"{'region':8s} {'n':>4s} {'recall':>7s} {'rank':>5s} {'p50 ms':>7s} {'p95 ms':>7s} {'pre p50':>7s}")
    for r, v in rep["regions"].items():
        print(f"{r:8s} {v['n']:4d} {v['recall']:7.3f} {v['mean_rank']:5.2f} {v['p50_ms']:7.1f} "
              f"{v['p95_ms']:7.1f} {v['preprocess_p50_ms']:7.1f}")
    o = rep["overall"]
    print(f"{'overall':8s} {o['n']:4d} {o['recall']:7.3f} {'':5s} {o['p50_ms']:7.1f} {o['p95_ms']:7.1f} "
          f"{o['preprocess_p50_ms']:7.1f}")
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
