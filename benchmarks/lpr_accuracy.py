"""End-to-end plate accuracy on a folder in the OpenALPR benchmark layout.

    python benchmarks/lpr_accuracy.py --data ../shared/data/plates [--region R] [--json OUT]
        [--reader auto|stock|tuned] [--top-k K] [--split all|train|val]

The full pipeline runs on every image; the label's box is used only for scoring.
Per region and overall: exact-match accuracy, accuracy with O=0 and I=1 equal,
localisation recall (a candidate box with IoU >= 0.5 against the label box), and
p50/p95 latency per frame (decode included, model load excluded).
``--split`` restricts to the images whose plate the plate-tuned recogniser was (train) or
was not (val) trained on, by plate text (``realdata.split_of``), so the quoted result comes
from unseen plates.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentile, write_json  # noqa: E402
from benchmarks.lpr_data import corners_to_box, iou, iter_dataset, lenient, overall_and_by_region  # noqa: E402


def _split_filter(split: str):
    """Keep labelled images whose plate is on ``split``'s side (``realdata.split_of``: by plate text)."""
    if split == "all":
        return lambda plate: True
    from parkinglot.lpr.realdata import split_of

    return lambda plate: split_of(plate) == split


def failure_class(result, plate: str, box: tuple[int, int, int, int]) -> str | None:
    """Why a reading is wrong (None when it is right), in the issue's classes:
    ``localisation`` (no candidate on the plate), ``two-line`` (a square plate),
    ``wrong-candidate`` (a candidate was on the plate but the text came from another one),
    ``look-alike`` (the right characters up to look-alike glyphs: O/0, I/1, B/8, S/5...),
    else ``misread``."""
    from parkinglot.plates import fold

    if result.text == plate:
        return None
    if box[2] < 1.6 * box[3]:
        return "two-line"
    if not any(iou(corners_to_box(b), box) >= 0.5 for b in result.candidate_boxes):
        return "localisation"
    if result.box is None or iou(corners_to_box(result.box), box) < 0.5:
        return "wrong-candidate"
    if fold(result.text) == fold(plate):
        return "look-alike"
    return "misread"


def _stats(rows: list[dict]) -> dict:
    n = len(rows)
    lat = [r["ms"] for r in rows]
    exact = sum(r["exact"] for r in rows)
    failures: dict[str, int] = {}
    for r in rows:
        if r.get("failure"):
            failures[r["failure"]] = failures.get(r["failure"], 0) + 1
    return {
        "images": n,
        "exact": exact,
        "exact_rate": round(exact / n, 4) if n else 0.0,
        "lenient_rate": round(sum(r["lenient"] for r in rows) / n, 4) if n else 0.0,
        "loc_recall": round(sum(r["located"] for r in rows) / n, 4) if n else 0.0,
        "p50_ms": round(percentile(lat, 0.5), 2) if n else 0.0,
        "p95_ms": round(percentile(lat, 0.95), 2) if n else 0.0,
        "failures": dict(sorted(failures.items())),
    }


def run(data: Path, region: str | None, reader_kind: str, top_k: int, split: str, verbose: bool,
        unseen: bool = False) -> dict:
    from parkinglot.lpr.ocr import get_reader
    from parkinglot.lpr.pipeline import Pipeline

    pipe = Pipeline(reader=get_reader(reader_kind), top_k=top_k)
    keep = _split_filter(split)
    items = [it for it in iter_dataset(data, region) if keep(it.plate)]
    if unseen:
        from parkinglot.lpr.realdata import trained_before_plate_split

        items = [it for it in items if not trained_before_plate_split(f"plates/{it.region}", it.path.name)]
    if not items:
        raise SystemExit(f"no labelled images under {data}")
    pipe.recognize(items[0].path.read_bytes(), items[0].region)  # warm-up: kernels compiled, reader loaded
    rows: dict[str, list[dict]] = defaultdict(list)
    for it in items:
        data_bytes = it.path.read_bytes()
        t0 = time.perf_counter()
        result = pipe.recognize(data_bytes, it.region)
        ms = (time.perf_counter() - t0) * 1000
        located = any(iou(corners_to_box(b), it.box) >= 0.5 for b in result.candidate_boxes)
        row = {"exact": result.text == it.plate, "lenient": lenient(result.text) == lenient(it.plate),
               "located": located, "ms": ms, "failure": failure_class(result, it.plate, it.box)}
        rows[it.region].append(row)
        if verbose:
            print(f"{it.region} {it.path.name}: read={result.text or '-':10s} truth={it.plate:10s} "
                  f"{'OK ' if row['exact'] else 'BAD'} loc={'y' if located else 'n'} {ms:.0f} ms "
                  f"{row['failure'] or ''} {result.reason or ''}", file=sys.stderr)
    return overall_and_by_region(rows, _stats)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--region")
    ap.add_argument("--json")
    ap.add_argument("--reader", default="auto", choices=["auto", "stock", "tuned"])
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--split", default="all", choices=["all", "train", "val"])
    ap.add_argument("--unseen", action="store_true",
                    help="also leave out the files the rounds before the split by plate trained on "
                         "(realdata.trained_before_plate_split): for weights continued from those rounds")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    write_json(args.json, run(args.data, args.region, args.reader, args.top_k, args.split, args.verbose,
                              args.unseen))


if __name__ == "__main__":
    main()
