"""Plate reader: crop normalisation, CTC decoding, and (marked ocr) the real networks."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from parkinglot.lpr import ocr

from .conftest import missing_prerequisite


def _plate(text: str, light_on_dark: bool = False, scale: float = 1.6) -> np.ndarray:
    """A clean plate crop drawn with OpenCV's Hershey font (no font files needed)."""
    face = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), _ = cv2.getTextSize(text, face, scale, 4)
    img = np.full((h + 24, w + 24), 235, np.uint8)
    cv2.putText(img, text, (12, h + 12), face, scale, 20, 4, cv2.LINE_AA)
    return 255 - img if light_on_dark else img


# ---------------------------------------------------------------- normalize_crop
@pytest.mark.parametrize("shape", [(20, 80), (64, 200), (150, 320), (10, 400), (300, 30), (1, 5)])
def test_normalize_crop_shape_and_dtype(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    out = ocr.normalize_crop(rng.integers(0, 256, shape, dtype=np.uint8))
    assert out.dtype == np.uint8
    assert out.shape[0] == ocr.IMG_H
    assert ocr.MIN_W <= out.shape[1] <= ocr.MAX_W


def test_normalize_crop_keeps_aspect_and_pads() -> None:
    out = ocr.normalize_crop(_plate("AB123"))
    src = _plate("AB123")
    expected = round(src.shape[1] * ocr.IMG_H / src.shape[0]) + 2 * ocr.PAD_X
    assert abs(out.shape[1] - expected) <= 1


def test_normalize_crop_makes_text_dark_on_light() -> None:
    dark = ocr.normalize_crop(_plate("XY4567"))
    light = ocr.normalize_crop(_plate("XY4567", light_on_dark=True))
    for out in (dark, light):
        assert np.median(out) > 128          # background is light
        assert out.min() < 60                # text is dark
    assert np.abs(dark.astype(int) - light.astype(int)).mean() < 25


def test_normalize_crop_stretches_contrast_and_accepts_colour() -> None:
    flat = (_plate("KL12") // 4 + 100).astype(np.uint8)       # values 100..160
    out = ocr.normalize_crop(flat)
    assert out.max() >= 250 and out.min() <= 5
    bgr = cv2.cvtColor(_plate("KL12"), cv2.COLOR_GRAY2BGR)
    assert ocr.normalize_crop(bgr).shape == ocr.normalize_crop(_plate("KL12")).shape


@pytest.mark.parametrize("bad", [np.zeros((0, 5), np.uint8), np.zeros((3, 3, 3, 3), np.uint8), "img"])
def test_normalize_crop_rejects_bad_input(bad) -> None:
    with pytest.raises(ValueError):
        ocr.normalize_crop(bad)


def test_batch_tensor_pads_right_with_last_column() -> None:
    a = np.full((ocr.IMG_H, 40), 255, np.uint8)
    a[:, -1] = 0
    b = np.full((ocr.IMG_H, 70), 128, np.uint8)
    x = ocr.batch_tensor([a, b])
    assert tuple(x.shape) == (2, 1, ocr.IMG_H, 70)
    assert float(x[0, 0, 0, 60]) == -1.0 and float(x[0, 0, 0, 0]) == 1.0


# ---------------------------------------------------------------- decoding
def _probs(path: list[int], sharp: float = 0.9) -> np.ndarray:
    C = len(ocr.CHARSET) + 1
    p = np.full((len(path), C), (1 - sharp) / (C - 1), np.float32)
    for t, c in enumerate(path):
        p[t, c] = sharp
    return p


def _cls(ch: str) -> int:
    return ocr.CHARSET.index(ch) + 1


def test_decode_collapses_repeats_and_blanks() -> None:
    path = [0, _cls("A"), _cls("A"), 0, _cls("B"), 0, _cls("B"), _cls("7"), 0, 0]
    rec = ocr.decode(_probs(path))
    best = rec.candidates[0]
    assert best.text == "ABB7"
    assert len(best.char_confidences) == 4
    assert all(0.8 < c <= 1.0 for c in best.char_confidences)
    assert 0.0 < best.confidence <= 1.0


def test_decode_gives_ranked_alternatives() -> None:
    path = [0, _cls("O"), 0, _cls("1"), 0, _cls("2"), 0]
    p = _probs(path)
    p[1, _cls("O")], p[1, _cls("0")] = 0.6, 0.35     # an O/0 doubt
    rec = ocr.decode(p)
    texts = [c.text for c in rec.candidates]
    assert texts[0] == "O12" and "012" in texts[:3]
    assert len(rec.candidates) >= 3
    confs = [c.confidence for c in rec.candidates]
    assert confs == sorted(confs, reverse=True)
    alt = rec.candidates[texts.index("012")]
    assert alt.char_confidences[0] == pytest.approx(0.35, abs=1e-3)


def test_decode_of_blank_output_is_empty() -> None:
    assert ocr.decode(_probs([0] * 12)).candidates == ()


def test_stock_class_map_keeps_plate_alphabet_only() -> None:
    chars = ocr.english_g2_characters()
    cmap = ocr.stock_class_map()
    assert cmap[chars.index("A") + 1] == _cls("A") and cmap[chars.index("7") + 1] == _cls("7")
    assert cmap[chars.index("a") + 1] == -1
    assert cmap[chars.index("-") + 1] == -1
    assert cmap[0] == 0


def test_get_reader_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        ocr.get_reader("best")


def test_square_crops_reach_the_network_with_their_rows_side_by_side() -> None:
    """A whole two-row plate is one wide line for the network; a one-line plate is unchanged."""
    import torch

    widths: list[int] = []

    class Recording(torch.nn.Module):
        def forward(self, x, _text):
            widths.append(int(x.shape[3]))
            return torch.zeros((x.shape[0], x.shape[3] // 4 - 1, len(ocr.CHARSET) + 1))

    reader = ocr.NetworkReader("recording", Recording())
    top, bottom = _plate("AB"), _plate("1234")
    square = np.vstack([np.pad(top, ((0, 0), (0, bottom.shape[1] - top.shape[1])), constant_values=235), bottom])
    assert square.shape[1] < 1.6 * square.shape[0]
    reader.read([square])
    reader.read([_plate("AB1234")])
    assert widths[0] > 2.5 * ocr.IMG_H                        # two rows laid side by side
    assert widths[1] == ocr.normalize_crop(_plate("AB1234")).shape[1]


# ---------------------------------------------------------------- networks (weights needed)
@pytest.fixture(scope="session")
def reader() -> ocr.PlateReader:
    ocr.warm_up()
    return ocr.get_reader("auto")


TEXTS = ("ABC1234", "7XKD042", "HR55TY", "PQ831")


@pytest.mark.ocr
def test_reader_reads_clean_rendered_plates(reader: ocr.PlateReader) -> None:
    crops = [_plate(t) for t in TEXTS] + [_plate(TEXTS[0], light_on_dark=True)]
    recs = reader.read(crops)
    assert len(recs) == len(crops)
    for rec in recs:
        assert rec.candidates
        for cand in rec.candidates:
            assert cand.text.isalnum() and cand.text == cand.text.upper()
            assert 0.0 <= cand.confidence <= 1.0
            assert len(cand.char_confidences) == len(cand.text)
    best = [r.candidates[0].text for r in recs]
    hits = sum(b == t for b, t in zip(best, TEXTS + (TEXTS[0],)))
    assert hits >= 3, best
    if reader.name == "tuned":
        assert hits == len(crops), best
    assert len(recs[0].candidates) >= 3


@pytest.mark.ocr
def test_reader_is_cached_and_empty_batch_is_fine(reader: ocr.PlateReader) -> None:
    assert ocr.get_reader("auto") is reader
    assert reader.read([]) == []


@pytest.mark.ocr
def test_missing_tuned_model_falls_back_to_stock_with_warning(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setattr(ocr, "TUNED_WEIGHTS", tmp_path / "absent.pth")
    monkeypatch.setattr(ocr, "_CACHE", {})
    with caplog.at_level(logging.WARNING, logger="parkinglot.lpr.ocr"):
        r = ocr.get_reader("auto")
    assert r.name == "stock"
    assert any("missing" in rec.getMessage() for rec in caplog.records)
    assert r.read([_plate("ABC1234")])[0].candidates


@pytest.mark.ocr
def test_tuned_model_loads_through_easyocr_custom_network() -> None:
    if not ocr.TUNED_WEIGHTS.is_file():
        missing_prerequisite(f"no tuned model at {ocr.TUNED_WEIGHTS}", needed_for="the shipped model")
    import easyocr

    models = str(ocr.MODELS_DIR)
    r = easyocr.Reader(["en"], gpu=False, detector=False, download_enabled=False, verbose=False,
                       recog_network=ocr.TUNED_NAME, user_network_directory=models,
                       model_storage_directory=models)
    img = _plate("ABC1234")
    out = r.recognize(img, horizontal_list=[[0, img.shape[1], 0, img.shape[0]]], free_list=[],
                      detail=0, allowlist=ocr.CHARSET)
    assert "".join(out).replace(" ", "") == "ABC1234"


def test_shipped_model_files_match_checksums() -> None:
    import hashlib

    sums = ocr.MODELS_DIR / "SHA256SUMS"
    if not sums.is_file():
        missing_prerequisite(f"no {sums}: the shipped model's checksums", needed_for="the shipped model")
    for line in sums.read_text().splitlines():
        digest, name = line.split()
        data = (ocr.MODELS_DIR / name.lstrip("*")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
