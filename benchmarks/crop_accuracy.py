"""Plate-crop accuracy and latency of the stock and the plate-tuned reader.

    python benchmarks/crop_accuracy.py --data ../shared/data/plate-crops/us [--reader both] [--split val] [--json OUT]

``--data`` is either a folder with ``labels.csv`` (``file,state,plate``) next to the
crop images, or a folder tree in the OpenALPR benchmark layout (``<region>/<name>.txt``
with ``<image>\\t<x>\\t<y>\\t<w>\\t<h>\\t<PLATE>``), whose label boxes are cut out as crops
(``--jitter N`` adds N deterministic jittered boxes per image), or, with ``--located``, cut by
the pipeline's locator: per image the best-ranked one-line candidate on the label box (what
the pipeline reads first; images where none is found are counted in ``unlocated``).
``--split val`` keeps only plates held out of training (``parkinglot.lpr.realdata.split_of``: by
plate text, so every file of a held-out plate, in any folder, is held out). Several ``--data``
folders may be given; each is reported on its own and all together.
Both readers see the same crops through the pipeline's ``normalize_crop``; latency is
one ``read([crop])`` call per crop, readers interleaved crop by crop so that load from
other processes hits both alike. ``--also NAME=WEIGHTS`` adds more tuned weights to the same run
(e.g. the previous model, side by side with the new one).

Two figures per reader: ``exact``, the recogniser's own best reading, and ``formats``, the
reading the pipeline would return for the crop: the recogniser's top five ranked by the plate
formats of the folder's region (``pipeline.rank_readings``; look-alike swaps only where the
reader was unsure). The region of a folder is ``--region FOLDER=REGION`` or, by default, the
known region its name starts with (``us2`` -> us, ``eu-2line`` -> eu, ``br`` -> br).
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

from parkinglot.lpr import formats, ocr  # noqa: E402
from parkinglot.lpr.pipeline import rank_readings, readings_of  # noqa: E402
from parkinglot.lpr.realdata import trained_before_plate_split  # noqa: E402
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
             if it.source.startswith(kind) and (split == "all" or split_of(it.text) == split)]
    if data.name != "plates":
        items = [it for it in items if it.source == f"{kind}/{data.name}"]
    best = located_views(items, best_only=True)
    labelled = [c for c in load_crops(data, 0)]
    labelled = [c[0] for c in labelled if split == "all" or split_of(c[2]) == split]
    return [(it.name, it.crop, it.text) for it in best], len(labelled) - len(best)


def region_of(folder: str, given: dict[str, str] | None = None) -> str | None:
    """The plate region whose formats rank a folder's readings: ``given[folder]``, else the known
    region the folder's name starts with, else None (no ``formats`` figure)."""
    if given and folder in given:
        formats.formats_for(given[folder])  # unknown region: ValueError
        return given[folder]
    return next((r for r in formats.REGIONS if folder.lower().startswith(r)), None)


def run(datas: list[Path], readers: list[str], split: str, jitter: int, located: bool = False,
        also: dict[str, Path] | None = None, unseen: bool = False,
        regions: dict[str, str] | None = None) -> dict[str, dict[str, dict]]:
    """Per folder (and ``"all"`` when there are several), per reader: crops, exact and lenient
    rates and counts, the rate with the region's formats, p50 per crop (one ``read([crop])``
    call, readers interleaved crop by crop)."""
    crops: list[tuple[str, np.ndarray, str]] = []
    folder_of: list[str] = []
    unlocated: dict[str, int] = {}
    for data in datas:
        if located:
            got, unlocated[data.name] = load_located_crops(data, split)
        else:
            got = load_crops(data, jitter)
            if split != "all":
                got = [c for c in got if split_of(c[2]) == split]
        if unseen:
            source = f"crops/{data.name}" if (data / "labels.csv").is_file() else f"plates/{data.name}"
            got = [c for c in got if not trained_before_plate_split(source, c[0])]
        if not got:
            raise SystemExit(f"no crops found in {data} (split {split})")
        crops += got
        folder_of += [data.name] * len(got)
    loaded = {k: ocr.get_reader(k) for k in readers}
    for name, path in (also or {}).items():
        loaded[name] = ocr.load_tuned(path)
    for r in loaded.values():              # warm-up, excluded from timing
        r.read([crops[0][1]])
    region = {d.name: region_of(d.name, regions) for d in datas}
    rows: dict[str, list[tuple[str, bool, bool, float, bool | None]]] = {k: [] for k in loaded}
    for (_name, img, plate), folder in zip(crops, folder_of):
        plate = "".join(ch for ch in plate if ch.isalnum())
        for k, r in loaded.items():
            t0 = time.perf_counter()
            rec = r.read([img])[0]
            ms = (time.perf_counter() - t0) * 1000
            text = rec.candidates[0].text if rec.candidates else ""
            chosen = None
            if region[folder] is not None:
                ranked = rank_readings(readings_of(rec), [region[folder]], keep=1)
                chosen = (ranked[0][0].text if ranked else "") == plate
            rows[k].append((folder, text == plate, text.translate(LENIENT) == plate.translate(LENIENT), ms, chosen))

    def stats(rs: list[tuple[str, bool, bool, float, bool | None]]) -> dict:
        n = len(rs)
        out = {"crops": n, "exact": sum(r[1] for r in rs), "exact_rate": round(sum(r[1] for r in rs) / n, 4),
               "lenient_rate": round(sum(r[2] for r in rs) / n, 4),
               "p50_ms": round(statistics.median(r[3] for r in rs), 2)}
        if all(r[4] is not None for r in rs):
            out["formats"] = sum(bool(r[4]) for r in rs)
            out["formats_rate"] = round(out["formats"] / n, 4)
        return out

    names = [d.name for d in datas] + (["all"] if len(datas) > 1 else [])
    out: dict[str, dict[str, dict]] = {}
    for name in names:
        out[name] = {k: stats([r for r in rs if name == "all" or r[0] == name]) for k, rs in rows.items()}
        if located:
            for v in out[name].values():
                v["unlocated"] = sum(unlocated.values()) if name == "all" else unlocated[name]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, action="append",
                    help="a crop folder or photo tree (repeatable: reported per folder and all together)")
    ap.add_argument("--reader", choices=("stock", "tuned", "both"), default="both")
    ap.add_argument("--split", choices=("all", "val", "train"), default="all")
    ap.add_argument("--jitter", type=int, default=0, help="extra jittered boxes per photo (OpenALPR layout)")
    ap.add_argument("--located", action="store_true",
                    help="crops cut by the pipeline's locator instead of the label box / the crop file")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=WEIGHTS",
                    help="more tuned weights read in the same run (repeatable)")
    ap.add_argument("--unseen", action="store_true",
                    help="also leave out the files the rounds before the split by plate trained on "
                         "(for a photo tree, give one region folder, e.g. plates/us)")
    ap.add_argument("--region", action="append", default=[], metavar="FOLDER=REGION",
                    help="plate region of a --data folder for the formats figure (default: from its name)")
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
                 {k: Path(v) for k, v in also.items()}, args.unseen,
                 dict(a.split("=", 1) for a in args.region))
    for folder, by_reader in result.items():
        for k, r in by_reader.items():
            print(f"{folder:10s} {k:8s} crops={r['crops']:4d} exact={r['exact_rate']:.1%} ({r['exact']}) "
                  f"lenient(O=0,I=1)={r['lenient_rate']:.1%} "
                  + (f"formats={r['formats_rate']:.1%} ({r['formats']}) " if "formats" in r else "")
                  + f"p50={r['p50_ms']:.1f} ms"
                  + (f" (images without a located crop: {r['unlocated']})" if "unlocated" in r else ""))
        if "stock" in by_reader and "tuned" in by_reader:
            print(f"{folder:10s} latency ratio tuned/stock p50 = "
                  f"{by_reader['tuned']['p50_ms'] / by_reader['stock']['p50_ms']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
