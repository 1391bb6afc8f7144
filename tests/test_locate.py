"""Plate locator on synthetic frames: recall, level crops, polarity, lines, API."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from parkinglot.lpr.locate import PlateCandidate, locate, locate_timed

from .lpr_synth_frames import SynthFrame, iou, make_frame

N_FRAMES = 40


@pytest.fixture(scope="module")
def results() -> list[tuple[SynthFrame, list[PlateCandidate]]]:
    """Run the locator once on a fixed-seed set of frames (shared by the tests below)."""
    out = []
    for seed in range(N_FRAMES):
        frame = make_frame(seed)
        out.append((frame, locate(frame.image, top_k=5)))
    return out


def _hit(frame: SynthFrame, cands: list[PlateCandidate]) -> PlateCandidate | None:
    return next((c for c in cands if iou(c.axis_box(), frame.box) >= 0.5), None)


def _edge_angle(q: np.ndarray) -> float:
    """Mean angle of the plate's top and bottom edges, degrees."""
    top = q[1] - q[0]
    bot = q[2] - q[3]
    return math.degrees((math.atan2(top[1], top[0]) + math.atan2(bot[1], bot[0])) / 2)


def test_set_covers_both_polarities_and_line_counts(results):
    frames = [f for f, _ in results]
    assert {f.polarity for f in frames} == {"dark_on_light", "light_on_dark"}
    assert {f.lines for f in frames} == {1, 2}


def test_recall_on_synthetic_frames(results):
    hits = sum(_hit(f, c) is not None for f, c in results)
    assert hits / len(results) >= 0.9, f"recall {hits}/{len(results)}"


def test_crops_are_level_and_banded(results):
    checked = 0
    for frame, cands in results:
        c = _hit(frame, cands)
        if c is None or c.source != "chars":
            continue
        checked += 1
        assert abs(c.angle - _edge_angle(frame.quad)) <= 4.0
        assert c.crop.dtype == np.uint8 and c.crop.ndim == 2
        assert c.crop.shape[0] == 64 * c.lines
        # trimmed to the characters: the ink spans most of the crop's height
        band = c.crop.astype(np.float32)
        rows = np.abs(band - np.median(band)).mean(axis=1)
        assert (rows > 0.5 * rows.max()).mean() >= 0.4
    assert checked >= 0.8 * len(results)


def test_polarity_and_lines(results):
    pol_ok = lines_ok = n = 0
    for frame, cands in results:
        c = _hit(frame, cands)
        if c is None:
            continue
        n += 1
        pol_ok += c.polarity == frame.polarity
        lines_ok += c.lines == frame.lines
    assert pol_ok >= 0.9 * n
    assert lines_ok >= 0.8 * n


def test_two_line_plate_crops_per_line():
    frame = make_frame(3, lines=2)
    c = _hit(frame, locate(frame.image))
    assert c is not None and c.lines == 2
    assert len(c.line_crops) == 2 and all(lc.shape[0] == 64 for lc in c.line_crops)


def test_candidate_api_and_timings():
    frame = make_frame(0)
    cands, timings = locate_timed(frame.image, top_k=3)
    assert 1 <= len(cands) <= 3
    assert set(timings) >= {"preprocess_ms", "candidates_ms", "rectify_ms"}
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True)
    c = cands[0]
    assert c.corners.shape == (4, 2) and c.corners.dtype == np.float32
    x, y, w, h = c.axis_box()
    assert w > 0 and h > 0
    assert c.polarity in ("dark_on_light", "light_on_dark")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.score = 0.0  # type: ignore[misc]


def test_grayscale_input_gives_same_boxes():
    frame = make_frame(1)
    import cv2

    gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
    a = [c.axis_box() for c in locate(frame.image)]
    b = [c.axis_box() for c in locate(gray)]
    assert a == b


def test_large_frame_is_searched_downscaled_and_mapped_back():
    small = make_frame(2, size=(800, 500))
    import cv2

    big = cv2.resize(small.image, (1920, 1200), interpolation=cv2.INTER_CUBIC)
    s = 1920 / 800
    box = tuple(int(round(v * s)) for v in small.box)
    assert _hit(SynthFrame(big, box, small.quad * s, small.angle, small.polarity, small.lines, small.text),
                locate(big)) is not None


@pytest.mark.parametrize("img", [np.zeros((120, 160, 3), np.uint8), np.full((50, 50), 255, np.uint8),
                                 np.zeros((1, 1, 3), np.uint8), np.zeros((3, 700), np.uint8)])
def test_blank_and_tiny_frames(img):
    assert locate(img) == []


@pytest.mark.parametrize("bad", [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10,), np.uint8), "frame"])
def test_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        locate(bad)


def test_rejects_bad_top_k():
    with pytest.raises(ValueError):
        locate(np.zeros((10, 10), np.uint8), top_k=0)


def _white_plate(img: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Draw a white plate with dark characters centred on it; returns the characters' box."""
    import cv2

    cv2.rectangle(img, (x, y), (x + w, y + h), (235, 235, 235), -1)
    (tw, th), _ = cv2.getTextSize("7KQM418", cv2.FONT_HERSHEY_SIMPLEX, 1.2, 3)
    tx, base = x + (w - tw) // 2, y + (h + th) // 2
    cv2.putText(img, "7KQM418", (tx, base), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (25, 25, 25), 3, cv2.LINE_AA)
    return tx, base - th, tw, th


def _plate_in_a_dealer_frame() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A plate whose characters stand with their feet in the frame's dark bottom bar: the
    characters and the bar are one blob in every ordinary threshold mask."""
    import cv2

    img = np.full((400, 640, 3), 90, np.uint8) + np.random.default_rng(3).integers(0, 20, (400, 640, 3), np.uint8)
    x, y, w, h = 220, 180, 200, 70
    cv2.rectangle(img, (x - 12, y - 12), (x + w + 12, y + h + 12), (30, 30, 30), -1)
    text_box = _white_plate(img, x, y, w, h)
    base = text_box[1] + text_box[3]
    cv2.rectangle(img, (x - 12, base - 3), (x + w + 12, y + h + 12), (30, 30, 30), -1)
    return img, text_box


def test_characters_standing_in_a_frame_bar_are_found_as_a_row():
    from parkinglot.lpr.locate import DEFAULT_PARAMS

    img, text_box = _plate_in_a_dealer_frame()
    without = locate(img, top_k=5, params=dataclasses.replace(DEFAULT_PARAMS, bar_cut=0))
    assert not any(c.source == "chars" and iou(c.axis_box(), text_box) >= 0.5 for c in without)
    best = locate(img, top_k=5)[0]
    assert best.source == "chars" and best.lines == 1 and iou(best.axis_box(), text_box) >= 0.5


def test_the_frame_bar_fallback_leaves_plates_found_the_ordinary_way_alone(results):
    from parkinglot.lpr.locate import DEFAULT_PARAMS

    plain = dataclasses.replace(DEFAULT_PARAMS, bar_cut=0)
    compared = 0
    for frame, cands in results[:20]:
        hit = _hit(frame, cands)
        other = _hit(frame, locate(frame.image, top_k=5, params=plain))
        if hit is not None and other is not None:
            assert np.allclose(hit.corners, other.corners) and hit.score == other.score
            compared += 1
    assert compared >= 15


def _frame_with_a_timestamp() -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A plate in the middle of the frame and the camera's timestamp burnt into its top-left corner."""
    import cv2

    rng = np.random.default_rng(5)
    img = np.empty((480, 720, 3), np.uint8)
    img[:] = cv2.GaussianBlur(rng.integers(60, 120, (480, 720, 1)).astype(np.uint8), (0, 0), 6)[..., None]
    cv2.rectangle(img, (0, 0), (330, 26), (0, 0, 0), -1)
    cv2.putText(img, "2014-05-13 07:22", (4, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.75, (255, 255, 255), 2, cv2.LINE_AA)
    return img, _white_plate(img, 280, 300, 170, 60), (0, 0, 330, 26)


def test_text_along_the_frame_border_loses_score_and_plates_inside_do_not():
    from parkinglot.lpr.locate import DEFAULT_PARAMS

    img, plate_box, stamp_box = _frame_with_a_timestamp()
    plain = locate(img, top_k=5, params=dataclasses.replace(DEFAULT_PARAMS, border_penalty=0.0))
    penalised = locate(img, top_k=5)

    def find(cands, box):
        return next(c for c in cands if iou(c.axis_box(), box) >= 0.5)

    assert find(penalised, plate_box) is penalised[0]
    assert find(penalised, plate_box).score == find(plain, plate_box).score
    lost = find(plain, stamp_box).score - find(penalised, stamp_box).score
    assert lost == pytest.approx(DEFAULT_PARAMS.border_penalty)
