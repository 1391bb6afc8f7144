"""Pipeline latency against ``easyocr.readtext`` on the full frame, side by side in one run.

    python benchmarks/lpr_latency.py [--data ../shared/data/plates] [--frames 20] [--json OUT]

Frames are resized to 1280x720 (the lane cameras' size) and JPEG-encoded, so decode is
part of the pipeline time. Both sides run interleaved on the same frames, so machine
noise hits both. Output: ``{"pipeline_p50_ms", "readtext_p50_ms", "ratio", "stages": {...}}``.
Without --data, synthetic frames are used.
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
    args = ap.parse_args(argv)

    from parkinglot.lpr import ocr
    from parkinglot.lpr.pipeline import Pipeline

    frames = frames_from(args.data, args.frames)
    pipe = Pipeline(reader=ocr.get_reader(args.reader))
    import easyocr
    import easyocr_en_models

    # The baseline: easyocr's own detector + recogniser on the whole frame, offline.
    full = easyocr.Reader(["en"], gpu=False, model_storage_directory=easyocr_en_models.model_dir(),
                          download_enabled=False, verbose=False)
    pipe.recognize(frames[0])
    full.readtext(cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR))
    pipe_ms, full_ms = [], []
    stages: dict[str, list[float]] = defaultdict(list)
    for f in frames:
        t0 = time.perf_counter()
        r = pipe.recognize(f)
        pipe_ms.append((time.perf_counter() - t0) * 1000)
        for k, v in r.timings.items():
            stages[k].append(v)
        t0 = time.perf_counter()
        full.readtext(cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR))
        full_ms.append((time.perf_counter() - t0) * 1000)
    p50, f50 = statistics.median(pipe_ms), statistics.median(full_ms)
    write_json(args.json, {
        "frames": len(frames), "frame_size": "1280x720",
        "pipeline_p50_ms": round(p50, 2), "readtext_p50_ms": round(f50, 2), "ratio": round(f50 / p50, 1),
        "stages": {k: round(statistics.median(v), 2) for k, v in sorted(stages.items())},
    })


if __name__ == "__main__":
    main()
