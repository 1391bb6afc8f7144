"""Frames in, plate out: ``recognize(frames, regions) -> PlateResult``.

The pipeline takes its locator and reader as arguments (tests pass fakes), and
reads all plate candidates of a burst in one batched recogniser call. The
text is chosen by recogniser confidence, region-format fit and locator score,
then voted character by character across the frames of one vehicle. "No
plate" is a result with a reason, never an exception; only unusable input
raises (``images.ImageError``).

``regions`` is one region (``"us"``) or a sequence of them (a site near a border lists
several, in its order of preference): every reading is ranked under each region's
formats, and the result names the region whose formats the chosen text fits best
(the earlier one on a tie).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from . import formats, images, lines

log = logging.getLogger("parkinglot.lpr")

Frame = Union[bytes, bytearray, memoryview, np.ndarray]
Regions = Union[str, Sequence[str]]

MIN_TEXT_LEN = 2
LOCATOR_WEIGHT = 0.15
# Staged reading: a reading this convincing (recogniser confidence plus format fit, see
# formats.score_candidates) ends the search; a runner-up within this ratio of the best
# locator score is read in the first stage too.
ACCEPT_SCORE = 0.6  # chosen on the train split: no exact read lost, ~2 crops per frame instead of ~5
MIN_ACCEPT_LEN = 4
RUNNER_UP_RATIO = 0.85


@dataclass(frozen=True)
class PlateResult:
    text: str  # normalised plate, "" when no plate was read
    confidence: float
    box: Optional[tuple[tuple[float, float], ...]]  # four corners in the chosen frame
    alternatives: tuple[tuple[str, float], ...]  # other plausible readings, best first
    timings: Mapping[str, float] = field(default_factory=dict)
    reason: Optional[str] = None  # why there is no plate
    frame_index: int = 0
    raw_text: str = ""
    region: str = "us"
    candidate_boxes: tuple[tuple[tuple[float, float], ...], ...] = ()
    char_confidences: tuple[float, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.text)


Locator = Callable[..., Any]


class Pipeline:
    """A configured recogniser: locator + reader + region rules."""

    def __init__(self, locator: Optional[Locator] = None, reader: Any = None, *, top_k: int = 5,
                 max_pixels: int = images.DEFAULT_MAX_PIXELS, max_frames: int = 8) -> None:
        if locator is None:
            from .locate import locate_timed as locator
        self.locator = locator
        self._reader = reader
        self.top_k = top_k
        self.max_pixels = max_pixels
        self.max_frames = max_frames

    @property
    def reader(self) -> Any:
        if self._reader is None:
            from .ocr import get_reader

            self._reader = get_reader()
        return self._reader

    def decode(self, frame: Frame) -> np.ndarray:
        if isinstance(frame, np.ndarray):
            return images.as_bgr(frame)
        if isinstance(frame, (bytes, bytearray, memoryview)):
            return images.decode(bytes(frame), max_pixels=self.max_pixels)
        raise images.NotAnImage(f"expected image bytes or a numpy array, got {type(frame).__name__}")

    def _locate(self, img: np.ndarray) -> tuple[list[Any], dict[str, float]]:
        out = self.locator(img, top_k=self.top_k)
        if isinstance(out, tuple):
            cands, stage_ms = out
            return list(cands), dict(stage_ms)
        return list(out), {}

    def recognize(self, frames: Union[Frame, Sequence[Frame]], regions: Regions = "us") -> PlateResult:
        """Read the plate of one vehicle from one frame or a burst of frames.

        ``regions``: one region name or a sequence of them; an unknown or empty one is a
        ``ValueError`` before any work."""
        regs = as_regions(regions)
        if isinstance(frames, (bytes, bytearray, memoryview, np.ndarray)):
            frames = [frames]
        frames = list(frames)
        if not frames:
            raise images.EmptyImage("no frames given")
        if len(frames) > self.max_frames:
            raise images.ImageError(f"at most {self.max_frames} frames per event, got {len(frames)}")
        t_start = time.perf_counter()
        timings: dict[str, float] = {}

        t0 = time.perf_counter()
        decoded = [self.decode(f) for f in frames]
        timings["decode_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        located: list[tuple[int, Any]] = []
        all_boxes: list[tuple[int, Any]] = []
        for fi, img in enumerate(decoded):
            cands, stage_ms = self._locate(img)
            for k, v in stage_ms.items():
                timings[f"locate_{k}"] = timings.get(f"locate_{k}", 0.0) + float(v)
            for c in cands:
                located.append((fi, c))
                all_boxes.append((fi, c))
        timings["locate_ms"] = (time.perf_counter() - t0) * 1000

        boxes = tuple(_corners(c) for _, c in all_boxes)
        if not located:
            timings["read_ms"] = 0.0
            timings["total_ms"] = (time.perf_counter() - t_start) * 1000
            return PlateResult("", 0.0, None, (), timings, "no_plate_found", region=regs[0])

        t0 = time.perf_counter()
        recognitions = self._read_in_stages(located, regs)
        timings["read_ms"] = (time.perf_counter() - t0) * 1000
        timings["crops_read"] = float(sum(r is not None for r in recognitions))

        t0 = time.perf_counter()
        result = self._choose(located, recognitions, regs, boxes)
        timings["choose_ms"] = (time.perf_counter() - t0) * 1000
        timings["total_ms"] = (time.perf_counter() - t_start) * 1000
        return PlateResult(**{**result.__dict__, "timings": timings})

    def _read_in_stages(self, located: list[tuple[int, Any]], regs: tuple[str, ...]) -> list[Any]:
        """Read the likeliest candidates first; read the rest only if none of those is convincing.

        On a CPU the recogniser costs the same per crop whether batched or not (~30 ms), so
        reading all K candidates of every frame would blow the lane's 100 ms budget. Stage
        one is one batch of each frame's best candidate (and a runner-up scoring close to
        it); stage two, one batch of everything else. ``None`` marks a candidate not read.
        """
        by_frame: dict[int, list[int]] = {}
        for i, (fi, cand) in enumerate(located):
            by_frame.setdefault(fi, []).append(i)
        first: list[int] = []
        for idxs in by_frame.values():
            idxs.sort(key=lambda i: -float(getattr(located[i][1], "score", 0.0)))
            best = float(getattr(located[idxs[0]][1], "score", 0.0))
            first.append(idxs[0])
            if len(idxs) > 1 and float(getattr(located[idxs[1]][1], "score", 0.0)) >= RUNNER_UP_RATIO * best:
                first.append(idxs[1])
        out: list[Any] = [None] * len(located)
        for i, rec in zip(first, self._read([located[i] for i in first])):
            out[i] = rec
        if not self._convincing([out[i] for i in first], regs):
            rest = [i for i in range(len(located)) if out[i] is None]
            for i, rec in zip(rest, self._read([located[i] for i in rest])):
                out[i] = rec
        return out

    @staticmethod
    def _convincing(recs: Sequence[Any], regs: tuple[str, ...]) -> bool:
        for rec in recs:
            ranked = rank_readings(readings_of(rec), regs, keep=1)
            # a reading that fits none of the regions' formats (half a plate, a phone number) may
            # still win in the end, but never stops the search for one that fits
            if (ranked and len(ranked[0][0].text) >= MIN_ACCEPT_LEN and ranked[0][0].score >= ACCEPT_SCORE
                    and ranked[0][0].format is not None):
                return True
        return False

    def _read(self, located: list[tuple[int, Any]]) -> list[Any]:
        """One batched reader call for the given candidates of the burst; a two-line plate is
        read as one crop with its rows side by side, top row first (``lines.side_by_side``),
        as the reader was trained to read it."""
        crops: list[np.ndarray] = []
        for _, cand in located:
            rows = list(getattr(cand, "line_crops", ()) or ()) if getattr(cand, "lines", 1) == 2 else []
            crops.append(lines.side_by_side(rows) if len(rows) == 2 else cand.crop)
        return self.reader.read(crops) if crops else []

    def _choose(self, located: list[tuple[int, Any]], recognitions: Sequence[Any], regs: tuple[str, ...],
                boxes: tuple) -> PlateResult:
        """Best candidate per frame, then a per-character vote across frames."""
        per_frame: dict[int, tuple[float, Any, Any, formats.Scored, str]] = {}
        alternatives: dict[str, float] = {}
        for (fi, cand), rec in zip(located, recognitions):
            if rec is None:  # not read: stage one was convincing
                continue
            options = readings_of(rec)
            usable = [(s, r) for s, r in rank_readings(options, regs) if len(s.text) >= MIN_TEXT_LEN]
            for s, _ in usable:
                alternatives[s.text] = max(alternatives.get(s.text, 0.0), s.score)
            if not usable:
                continue
            top, top_region = usable[0]
            total = top.score + LOCATOR_WEIGHT * float(getattr(cand, "score", 0.0))
            if fi not in per_frame or per_frame[fi][0] < total:
                per_frame[fi] = (total, cand, rec, top, top_region)
        if not per_frame:
            return PlateResult("", 0.0, None, (), reason="unreadable_plate", region=regs[0], candidate_boxes=boxes)

        best_fi = max(per_frame, key=lambda f: per_frame[f][0])
        _, cand, rec, top, chosen_region = per_frame[best_fi]
        raw = rec.candidates[0].text if rec.candidates else top.text
        text, confidence = top.text, top.confidence
        char_conf = _char_conf(rec, top.text)
        if len(per_frame) > 1:
            readings = [(per_frame[f][3].text, _char_conf(per_frame[f][2], per_frame[f][3].text)) for f in per_frame]
            voted = formats.vote(readings)
            if voted is not None:
                best = rank_readings([(voted[0], 1.0, voted[1])], regs, keep=1)
                text, chosen_region = (best[0][0].text, best[0][1]) if best else (voted[0], chosen_region)
                char_conf = voted[1]
                agreeing = [per_frame[f][3].confidence for f in per_frame if per_frame[f][3].text == text]
                confidence = max(agreeing) if agreeing else float(np.mean(char_conf)) if char_conf else confidence
        alts = tuple(sorted(((t, round(max(0.0, min(1.0, s)), 4)) for t, s in alternatives.items() if t != text),
                            key=lambda ts: -ts[1])[:5])
        return PlateResult(text=text, confidence=float(max(0.0, min(1.0, confidence))), box=_corners(cand),
                           alternatives=alts, frame_index=best_fi, raw_text=raw, region=chosen_region,
                           candidate_boxes=boxes, char_confidences=tuple(float(c) for c in char_conf))


def as_regions(regions: Regions) -> tuple[str, ...]:
    """One region name or a sequence of them as a non-empty tuple of known regions, in the
    given order, without repeats (ValueError otherwise)."""
    names = (regions,) if isinstance(regions, str) else tuple(regions)
    if not names:
        raise ValueError(f"no plate region given; known: {', '.join(formats.REGIONS)}")
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"a plate region is a name, got {type(name).__name__}")
        formats.formats_for(name)  # unknown region: ValueError
    return tuple(dict.fromkeys(names))


def readings_of(rec: Any) -> list[formats.Reading]:
    """A recognition's candidates as ``formats`` readings: text, confidence and the confidence
    of each character (so that a format bends only characters the reader was unsure of)."""
    return [(tc.text, tc.confidence, tuple(tc.char_confidences)) for tc in rec.candidates]


def rank_readings(options: Sequence[formats.Reading], regions: Sequence[str],
                  keep: int = 5) -> list[tuple[formats.Scored, str]]:
    """``formats.score_candidates`` under each region; per corrected text its best score and the
    region that gave it (the earlier region on a tie), best first."""
    best: dict[str, tuple[formats.Scored, str]] = {}
    for region in regions:
        for s in formats.score_candidates(options, region, keep=keep):
            if s.text not in best or best[s.text][0].score < s.score:
                best[s.text] = (s, region)
    return sorted(best.values(), key=lambda sr: -sr[0].score)[:keep]


def _corners(cand: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in np.asarray(cand.corners).reshape(4, 2))


def _char_conf(rec: Any, text: str) -> tuple[float, ...]:
    for tc in rec.candidates:
        if len(tc.char_confidences) == len(text):
            return tuple(tc.char_confidences)
    return tuple([rec.candidates[0].confidence if rec.candidates else 0.5] * len(text))


_default: Optional[Pipeline] = None
_default_lock = threading.Lock()
_warm = False


def is_warm() -> bool:
    """Whether this process has loaded the recogniser and compiled the kernels."""
    return _warm


def default_pipeline() -> Pipeline:
    """The process-wide pipeline (reader loaded once per process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Pipeline()
        return _default


def recognize(frames: Union[Frame, Sequence[Frame]], regions: Regions = "us") -> PlateResult:
    """The process-wide pipeline's reading of one vehicle (see ``Pipeline.recognize``)."""
    return default_pipeline().recognize(frames, regions)


def warm_up() -> None:
    """Load the recogniser and compile/warm the numba kernels (once per process)."""
    from . import ocr

    ocr.warm_up()
    pipe = default_pipeline()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    pipe.recognize(frame)
    global _warm
    _warm = True
    log.info("lpr warm-up done in %.0f ms", (time.perf_counter() - t0) * 1000)
