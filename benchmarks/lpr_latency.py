"""Pipeline latency against ``easyocr.readtext`` on the full frame, side by side in one run.

    python benchmarks/lpr_latency.py [--data ../shared/data/plates] [--frames 20] [--json OUT]
        [--also NAME=WEIGHTS ...] [--no-readtext] [--threads N]

Frames are resized to 1280x720 (the lane cameras' size) and JPEG-encoded, so decode is
part of the pipeline time. Both sides run interleaved on the same frames, so machine
noise hits both. Output: ``{"pipeline_p50_ms", "readtext_p50_ms", "ratio", "stages": {...}}``.
Without --data, synthetic frames are used. ``--also NAME=WEIGHTS`` adds a pipeline with other
recogniser weights (e.g. the previous model), read on the same frames, interleaved, so old and
new weights are timed side by side; ``--no-readtext`` leaves easyocr's full-frame baseline out.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import write_json  # noqa: E402
from benchmarks.lpr_data import iter_dataset  # noqa: E402


def frames_from(data: Path | None, n: int) -> list[bytes]:
    out = []
    if data is not None:
        for it in iter_dataset(data):
            img = cv2.imread(str(it.path))
            if img is None:
                continue
            img = cv2.resize(img, (1280, 720), interpolation=cv2.INTER_AREA)
            out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
            if len(out) >= n:
                break
    else:
        import random

        from parkinglot.demo import random_plate, render_frame

        rng = random.Random(0)
        out = [render_frame(random_plate(rng), rng) for _ in range(n)]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--reader", default="auto", choices=["auto", "stock", "tuned"])
    ap.add_argument("--also", action="append", default=[], metavar="NAME=WEIGHTS",
                    help="another pipeline with these recogniser weights, timed on the same frames (repeatable)")
    ap.add_argument("--no-readtext", action="store_true", help="leave out easyocr's full-frame baseline")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)

    import torch

    from parkinglot.lpr import ocr
    from parkinglot.lpr.pipeline import Pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    frames = frames_from(args.data, args.frames)
    pipes = {"pipeline": Pipeline(reader=ocr.get_reader(args.reader))}
    for spec in args.also:
        name, _, path = spec.partition("=")
        pipes[name] = Pipeline(reader=ocr.load_tuned(Path(path)))
    full = None
    if not args.no_readtext:
        import easyocr
        import easyocr_en_models

        # The baseline: easyocr's own detector + recogniser on the whole frame, offline.
        full = easyocr.Reader(["en"], gpu=False, model_storage_directory=easyocr_en_models.model_dir(),
                              download_enabled=False, verbose=False)
        full.readtext(cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR))
    for pipe in pipes.values():
        pipe.recognize(frames[0])
    ms: dict[str, list[float]] = {k: [] for k in pipes}
    full_ms: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    for i, f in enumerate(frames):
        order = list(pipes) if i % 2 == 0 else list(reversed(pipes))   # alternate who goes first
        for name in order:
            t0 = time.perf_counter()
            r = pipes[name].recognize(f)
            ms[name].append((time.perf_counter() - t0) * 1000)
            if name == "pipeline":
                for k, v in r.timings.items():
                    stages[k].append(v)
        if full is not None:
            t0 = time.perf_counter()
            full.readtext(cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR))
            full_ms.append((time.perf_counter() - t0) * 1000)
    p50 = statistics.median(ms["pipeline"])
    out = {"frames": len(frames), "frame_size": "1280x720", "pipeline_p50_ms": round(p50, 2),
           "stages": {k: round(statistics.median(v), 2) for k, v in sorted(stages.items())}}
    for name in pipes:
        if name != "pipeline":
            out[f"{name}_p50_ms"] = round(statistics.median(ms[name]), 2)
            out[f"pipeline_over_{name}_p50"] = round(p50 / statistics.median(ms[name]), 3)
    if full_ms:
        f50 = statistics.median(full_ms)
        out.update({"readtext_p50_ms": round(f50, 2), "ratio": round(f50 / p50, 1)})
    write_json(args.json, out)


if __name__ == "__main__":
    main()
