"""This plate pipeline against a general-purpose OCR (RapidOCR, PP-OCRv4) on the same photos.

    python benchmarks/peer_ocr.py --data ../shared/data/plates [--split val] [--region R]
        [--threads 1] [--json OUT] [-v]

Both read every labelled photo of an OpenALPR-layout folder in one run, interleaved photo by
photo (so load from other processes hits both alike), each from the JPEG bytes (decoding is
timed on both sides), with the same number of CPU threads. Per region and overall:

* this pipeline: exact and lenient (O=0, I=1) accuracy of its one plate, and its misses
  counted by class (``lpr_accuracy.failure_class``);
* the peer: a hit when **any** of its text lines, upper-cased with spaces, dashes and dots
  removed, equals the plate (exact), or equals it with O=0 and I=1 (lenient). That is the
  peer's best case: it is not asked to say which line is the plate;
* p50 / p95 milliseconds per photo on each side, the ratio peer / pipeline, and the margin
  in points (pipeline exact minus peer exact).

The peer is an optional benchmark dependency, never a runtime one:
``pip install -c constraints.txt '.[bench]'`` then ``pip install --no-deps 'rapidocr-onnxruntime>=1.4.4'``
(its wheel ships the PP-OCRv4 models; ``--no-deps`` because it asks for the ``opencv-python``
wheel, and the project uses ``opencv-python-headless``, which provides the same ``cv2``).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentile, write_json  # noqa: E402
from benchmarks.lpr_accuracy import failure_class  # noqa: E402
from benchmarks.lpr_data import iter_dataset, lenient, overall_and_by_region  # noqa: E402

INSTALL_HINT = ("RapidOCR is not installed: pip install -c constraints.txt '.[bench]' && "
                "pip install --no-deps 'rapidocr-onnxruntime>=1.4.4'")


def peer_lines(result: Any) -> list[str]:
    """The peer's text lines, upper case, letters and digits only (empty lines dropped)."""
    out = []
    for item in result or ():
        text = "".join(ch for ch in str(item[1]).upper() if ch.isalnum() and ch.isascii())
        if text:
            out.append(text)
    return out


def peer_hit(lines: Sequence[str], plate: str) -> tuple[bool, bool]:
    """(exact, lenient): whether any line equals the plate, and with O=0 and I=1."""
    return plate in lines, lenient(plate) in {lenient(t) for t in lines}


def load_peer(threads: int):
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise SystemExit(INSTALL_HINT) from exc
    return RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)


def _stats(rows: list[dict]) -> dict:
    n = len(rows)
    if not n:
        return {"photos": 0}
    ours = [r["ours_ms"] for r in rows]
    peer = [r["peer_ms"] for r in rows]
    out = {
        "photos": n,
        "pipeline_exact": sum(r["ours_exact"] for r in rows),
        "pipeline_exact_rate": round(sum(r["ours_exact"] for r in rows) / n, 4),
        "pipeline_lenient_rate": round(sum(r["ours_lenient"] for r in rows) / n, 4),
        "peer_any_line_exact": sum(r["peer_exact"] for r in rows),
        "peer_any_line_exact_rate": round(sum(r["peer_exact"] for r in rows) / n, 4),
        "peer_any_line_lenient_rate": round(sum(r["peer_lenient"] for r in rows) / n, 4),
        "pipeline_p50_ms": round(percentile(ours, 0.5), 1), "pipeline_p95_ms": round(percentile(ours, 0.95), 1),
        "peer_p50_ms": round(percentile(peer, 0.5), 1), "peer_p95_ms": round(percentile(peer, 0.95), 1),
        "pipeline_failures": dict(sorted(Counter(r["failure"] for r in rows if r["failure"]).items())),
    }
    out["margin_points"] = round(100 * (out["pipeline_exact_rate"] - out["peer_any_line_exact_rate"]), 1)
    out["p50_ratio_peer_over_pipeline"] = round(out["peer_p50_ms"] / max(out["pipeline_p50_ms"], 1e-9), 1)
    return out


def run(data: Path, region: str | None, split: str, threads: int, verbose: bool, unseen: bool = False) -> dict:
    import torch

    from parkinglot.lpr.ocr import get_reader
    from parkinglot.lpr.pipeline import Pipeline
    from parkinglot.lpr.realdata import split_of, trained_before_plate_split

    torch.set_num_threads(threads)
    items = [it for it in iter_dataset(data, region) if split == "all" or split_of(it.plate) == split]
    if unseen:
        items = [it for it in items if not trained_before_plate_split(f"plates/{it.region}", it.path.name)]
    if not items:
        raise SystemExit(f"no labelled photos under {data} (split {split})")
    pipe = Pipeline(reader=get_reader("auto"))
    peer = load_peer(threads)
    first = items[0].path.read_bytes()
    pipe.recognize(first, items[0].region)  # warm-up: kernels compiled, reader loaded
    peer(cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR))
    rows: dict[str, list[dict]] = defaultdict(list)
    for k, it in enumerate(items):
        data_bytes = it.path.read_bytes()
        row: dict = {}
        for side in (("ours", "peer") if k % 2 == 0 else ("peer", "ours")):   # alternate who goes first
            t0 = time.perf_counter()
            if side == "ours":
                result = pipe.recognize(data_bytes, it.region)
                row["ours_ms"] = (time.perf_counter() - t0) * 1000
                text = result.text
                row["ours_exact"], row["ours_lenient"] = text == it.plate, lenient(text) == lenient(it.plate)
                row["ours_text"], row["failure"] = text, failure_class(result, it.plate, it.box)
            else:
                result, _ = peer(cv2.imdecode(np.frombuffer(data_bytes, np.uint8), cv2.IMREAD_COLOR))
                row["peer_ms"] = (time.perf_counter() - t0) * 1000
                lines = peer_lines(result)
                row["peer_exact"], row["peer_lenient"] = peer_hit(lines, it.plate)
                row["peer_lines"] = lines
        rows[it.region].append(row)
        if verbose:
            print(f"{it.region} {it.path.name}: truth={it.plate:10s} ours={row['ours_text'] or '-':10s} "
                  f"{'OK ' if row['ours_exact'] else 'BAD'} {row['failure'] or ''} "
                  f"peer={'OK ' if row['peer_exact'] else 'BAD'} "
                  f"{row['ours_ms']:.0f} / {row['peer_ms']:.0f} ms lines={row['peer_lines'][:6]}", file=sys.stderr)
    return {"split": split, "unseen_only": unseen, "threads": threads, **overall_and_by_region(rows, _stats)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="OpenALPR layout: <region>/<image> + <image>.txt")
    ap.add_argument("--region")
    ap.add_argument("--split", default="val", choices=["all", "train", "val"],
                    help="plates held out of training (val, the default), trained on, or all")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for each side (torch / onnxruntime)")
    ap.add_argument("--json")
    ap.add_argument("--unseen", action="store_true",
                    help="also leave out the files the rounds before the split by plate trained on")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    write_json(args.json, run(args.data, args.region, args.split, args.threads, args.verbose, args.unseen))


if __name__ == "__main__":
    main()
