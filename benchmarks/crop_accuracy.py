"""Plate-crop accuracy and latency of the stock and the plate-tuned reader.

    python benchmarks/crop_accuracy.py --data ../shared/data/plate-crops/us [--reader both] [--split val] [--json OUT]

``--data`` is either a folder with ``labels.csv`` (``file,state,plate``) next to the
crop images, or a folder tree in the OpenALPR benchmark layout (``<region>/<name>.txt``
with ``<image>\\t<x>\\t<y>\\t<w>\\t<h>\\t<PLATE>``), whose label boxes are cut out as crops
(``--jitter N`` adds N deterministic jittered boxes per image), or, with ``--located``, cut by
the pipeline's locator: per image the best-ranked one-line candidate on the label box (what
the pipeline reads first; images where none is found are counted in ``unlocated``).
``--split val`` keeps only files held out of training (``parkinglot.lpr.train.split_of``).
Both readers see the same crops through the pipeline's ``normalize_crop``; latency is
one ``read([crop])`` call per crop, readers interleaved crop by crop so that load from
other processes hits both alike. ``--also NAME=WEIGHTS`` adds more tuned weights to the same run
(e.g. the previous model, side by side with the new one).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parkinglot.lpr import ocr  # noqa: E402
from parkinglot.lpr.train import cut_box, located_views, load_located, split_of  # noqa: E402

LENIENT = str.maketrans({"O": "0", "I": "1"})


def load_crops(data: Path, jitter: int) -> list[tuple[str, np.ndarray, str]]:
    """(file name, grayscale crop, plate) for a labels.csv folder or an OpenALPR tree."""
    out = []
    if (data / "labels.csv").is_file():
        with open(data / "labels.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                img = cv2.imread(str(data / row["file"]), cv2.IMREAD_GRAYSCALE)
                if img is not None:
                    out.append((row["file"], img, row["plate"].strip().upper()))
        return out
    txts = sorted(data.glob("*.txt")) or sorted(data.glob("*/*.txt"))
    for txt in txts:
        parts = txt.read_text().strip().split("\t")
        if len(parts) < 6:
            continue
        img = cv2.imread(str(txt.parent / parts[0]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        box = tuple(float(v) for v in parts[1:5])
        out.append((parts[0], cut_box(img, box, None), parts[5].strip().upper()))
        rng = np.random.default_rng(int(hashlib.sha256(parts[0].encode()).hexdigest()[:8], 16))
        for _ in range(jitter):
            out.append((parts[0], cut_box(img, box, rng, float(rng.uniform(-3, 3))), parts[5].strip().upper()))
    return out


def load_located_crops(data: Path, split: str) -> tuple[list[tuple[str, np.ndarray, str]], int]:
    """Locator crops (best-ranked one-line candidate on the label box) and the number of
    labelled images without one."""
    if (data / "labels.csv").is_file():
        root, kind = data.parent.parent, "crops"        # <root>/plate-crops/<name>/labels.csv
    else:
        root, kind = (data.parent, "plates") if data.name == "plates" else (data.parent.parent, "plates")
    items = [it for it in load_located(root, quiet=True)
             if (it.source == "crops") == (kind == "crops") and (split == "all" or split_of(it.name) == split)]
    if kind == "plates" and data.name != "plates":
        items = [it for it in items if it.source == f"plates/{data.name}"]
    best = located_views(items, best_only=True)
    labelled = [c[0] for c in load_crops(data, 0)]
    labelled = [n for n in labelled if split == "all" or split_of(n) == split]
    return [(it.name, it.crop, it.text) for it in best], len(labelled) - len(best)


def run(data: Path, readers: list[str], split: str, jitter: int, located: bool = False,
        also: dict[str, Path] | None = None) -> dict[str, dict[str, float]]:
    unlocated = 0
    if located:
        crops, unlocated = load_located_crops(data, split)
    else:
        crops = load_crops(data, jitter)
        if split != "all":
            crops = [c for c in crops if split_of(c[0]) == split]
    if not crops:
        raise SystemExit(f"no crops found in {data} (split {split})")
    loaded = {k: ocr.get_reader(k) for k in readers}
    for name, path in (also or {}).items():
        loaded[name] = ocr.load_tuned(path)
    for r in loaded.values():              # warm-up, excluded from timing
        r.read([crops[0][1]])
    stats = {k: {"ok": 0, "len": 0, "ms": []} for k in loaded}
    for _name, img, plate in crops:
        for k, r in loaded.items():
            t0 = time.perf_counter()
            rec = r.read([img])[0]
            stats[k]["ms"].append((time.perf_counter() - t0) * 1000)
            text = rec.candidates[0].text if rec.candidates else ""
            plate = "".join(ch for ch in plate if ch.isalnum())
            stats[k]["ok"] += text == plate
            stats[k]["len"] += text.translate(LENIENT) == plate.translate(LENIENT)
    out = {k: {"crops": len(crops), "exact_rate": round(s["ok"] / len(crops), 4),
               "lenient_rate": round(s["len"] / len(crops), 4),
               "p50_ms": round(statistics.median(s["ms"]), 2)} for k, s in stats.items()}
    if located:
        for v in out.values():
            v["unlocated"] = unlocated
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--reader", choices=("stock", "tuned", "both"), default="both")
    ap.add_argument("--split", choices=("all", "val", "train"), default="all")
    ap.add_argument("--jitter", type=int, default=0, help="extra jittered boxes per photo (OpenALPR layout)")
    ap.add_argument("--located", action="store_true",
                    help="crops cut by the pipeline's locator instead of the label box / the crop file")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=WEIGHTS",
                    help="more tuned weights read in the same run (repeatable)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: small recogniser ops run faster single-threaded on a busy CPU)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    readers = ["stock", "tuned"] if args.reader == "both" else [args.reader]
    also = dict(a.split("=", 1) for a in args.also)
    result = run(args.data, readers, args.split, args.jitter, args.located,
                 {k: Path(v) for k, v in also.items()})
    for k, r in result.items():
        print(f"{k:6s} crops={r['crops']:4d} exact={r['exact_rate']:.1%} "
              f"lenient(O=0,I=1)={r['lenient_rate']:.1%} p50={r['p50_ms']:.1f} ms"
              + (f" (images without a located crop: {r['unlocated']})" if "unlocated" in r else ""))
    if "stock" in result and "tuned" in result:
        print(f"latency ratio tuned/stock p50 = {result['tuned']['p50_ms'] / result['stock']['p50_ms']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
