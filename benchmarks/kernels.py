"""Time each numba kernel against its OpenCV counterpart on a 1280x720 frame.

Both sides run alternately in one loop (warm-up first, then the median of N), so
machine load hits them alike; the ratio numba/OpenCV is the figure to read (< 1 is
faster). OpenCV runs single-threaded, as the kernels do. Also times the locator's
whole numba preprocessing stage.

    python benchmarks/kernels.py [--frame IMG] [-n 50] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from parkinglot.lpr import kernels as K
from parkinglot.lpr.locate import DEFAULT_PARAMS, locate_timed


def _synthetic_frame(w: int = 1280, h: int = 720) -> np.ndarray:
    """A frame with texture, edges and text, so thresholds and labelling see real work."""
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(30, 220, (h // 24, w // 24, 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    for i in range(40):
        x, y = int(rng.integers(0, w - 300)), int(rng.integers(20, h - 20))
        cv2.putText(img, "".join(rng.choice(list("ABCDEFGH0123456789"), 7)), (x, y),
                    cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 2.0)), (20, 20, 20), 2)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _pair(fa: Callable[[], object], fb: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(3):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return float(np.median(ta) * 1e3), float(np.median(tb) * 1e3)


def run(frame: np.ndarray, n: int) -> dict:
    cv2.setNumThreads(1)
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    b = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 25, 5)
    mean_c = cv2.ADAPTIVE_THRESH_MEAN_C

    def rect(k: tuple[int, int]) -> np.ndarray:
        return cv2.getStructuringElement(cv2.MORPH_RECT, k)

    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("gray", lambda: K.to_gray(frame), lambda: cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)),
        ("integral", lambda: K.integral(g), lambda: cv2.integral(g)),
        ("integral_sq", lambda: K.integral_sq(g), lambda: cv2.integral2(g)),
        ("adaptive_mean b25", lambda: K.adaptive_threshold_mean(g, 25, 5, inverse=True),
         lambda: cv2.adaptiveThreshold(g, 255, mean_c, cv2.THRESH_BINARY_INV, 25, 5)),
        ("adaptive_both b25 (2 polarities)", lambda: K.adaptive_threshold_both(g, 25, 5),
         lambda: (cv2.adaptiveThreshold(g, 255, mean_c, cv2.THRESH_BINARY_INV, 25, 5),
                  cv2.adaptiveThreshold(g, 255, mean_c, cv2.THRESH_BINARY, 25, -5))),
        ("sauvola w25 (vs adaptive mean)", lambda: K.sauvola_threshold(g, 25),
         lambda: cv2.adaptiveThreshold(g, 255, mean_c, cv2.THRESH_BINARY, 25, 5)),
        ("sobel_x int16", lambda: K.sobel_x(g), lambda: cv2.Sobel(g, cv2.CV_16S, 1, 0, ksize=3)),
        ("sobel_x abs u8", lambda: K.sobel_x(g, absolute=True),
         lambda: cv2.convertScaleAbs(cv2.Sobel(g, cv2.CV_16S, 1, 0, ksize=3))),
    ]
    for k in [(3, 3), (17, 3), (9, 5), (45, 9)]:
        cases.append((f"dilate {k}", lambda k=k: K.dilate(g, k), lambda k=k: cv2.dilate(g, rect(k))))
        cases.append((f"erode {k}", lambda k=k: K.erode(g, k), lambda k=k: cv2.erode(g, rect(k))))
        cases.append((f"close {k}", lambda k=k: K.close(b, k),
                      lambda k=k: cv2.morphologyEx(b, cv2.MORPH_CLOSE, rect(k))))
        cases.append((f"open {k}", lambda k=k: K.open_(b, k),
                      lambda k=k: cv2.morphologyEx(b, cv2.MORPH_OPEN, rect(k))))
    nfg = cv2.connectedComponents(b)[0]
    cases += [
        (f"cc+stats ({nfg} comps)", lambda: K.connected_components(b),
         lambda: cv2.connectedComponentsWithStats(b)),
        ("cc+stats, no label map", lambda: K.connected_components(b, labels=False),
         lambda: cv2.connectedComponentsWithStats(b)),
    ]
    rows = []
    for name, fa, fb in cases:
        a, c = _pair(fa, fb, n)
        rows.append({"kernel": name, "numba_ms": a, "opencv_ms": c, "ratio": a / c})

    # the locator's numba preprocessing stage, and locate() itself
    pre, tot = [], []
    for i in range(max(5, n // 2) + 3):
        _, t = locate_timed(frame, top_k=5, params=DEFAULT_PARAMS)
        if i >= 3:
            pre.append(t["preprocess_ms"])
            tot.append(t["total_ms"])
    return {"frame": list(frame.shape), "n": n, "kernels": rows,
            "locate_preprocess_p50_ms": float(np.median(pre)), "locate_total_p50_ms": float(np.median(tot))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=Path, help="image to use (resized to 1280x720); default synthetic")
    ap.add_argument("-n", type=int, default=50, help="timed repetitions per kernel")
    ap.add_argument("--json", type=Path, help="write results here")
    args = ap.parse_args(argv)
    if args.frame:
        img = cv2.imread(str(args.frame), cv2.IMREAD_COLOR)
        if img is None:
            ap.error(f"cannot read {args.frame}")
        frame = cv2.resize(img, (1280, 720), interpolation=cv2.INTER_AREA)
    else:
        frame = _synthetic_frame()
    rep = run(frame, args.n)
    print(f"frame {rep['frame']}, median of {rep['n']} (ms); ratio = numba / OpenCV (1 thread)")
    print(f"{'kernel':34s} {'numba':>8s} {'opencv':>8s} {'ratio':>6s}")
    for r in rep["kernels"]:
        print(f"{r['kernel']:34s} {r['numba_ms']:8.3f} {r['opencv_ms']:8.3f} {r['ratio']:6.2f}")
    print(f"locate preprocessing p50: {rep['locate_preprocess_p50_ms']:.1f} ms; "
          f"locate total p50: {rep['locate_total_p50_ms']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
