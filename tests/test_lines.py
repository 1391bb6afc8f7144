"""Two-row plates read as one line: where the rows part, and the rows laid side by side."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from parkinglot.lpr import lines, synth


def _two_rows(top: str, bottom: str, gap: int = 14) -> np.ndarray:
    """A square plate of two Hershey rows, dark on light, and the middle of the gap between them."""
    face, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 1.6, 4
    (w1, h1), _ = cv2.getTextSize(top, face, scale, thick)
    (w2, h2), _ = cv2.getTextSize(bottom, face, scale, thick)
    w = max(w1, w2) + 30
    h = 12 + h1 + gap + h2 + 12
    img = np.full((h, max(w, int(h * 1.3))), 230, np.uint8)
    cv2.putText(img, top, ((img.shape[1] - w1) // 2, 12 + h1), face, scale, 20, thick, cv2.LINE_AA)
    cv2.putText(img, bottom, ((img.shape[1] - w2) // 2, 12 + h1 + gap + h2), face, scale, 20, thick, cv2.LINE_AA)
    return img


def test_a_square_plate_parts_between_its_rows():
    img = _two_rows("AB", "1234")
    cut = lines.find_cut(img)
    assert cut is not None
    ink = (img < 128).mean(axis=1)
    assert ink[cut] == 0                                 # no character is cut through
    assert ink[:cut].sum() > 0 and ink[cut:].sum() > 0   # and both rows keep their ink


def test_wide_crops_are_one_line_unless_told_otherwise():
    wide = np.full((60, 200), 230, np.uint8)
    cv2.putText(wide, "ABC123", (8, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 20, 3)
    assert lines.find_cut(wide) is None and lines.as_one_line(wide) is wide
    assert lines.find_cut(wide, square=True) is not None
    assert lines.find_cut(np.zeros((3, 3), np.uint8)) is None


def test_rows_side_by_side_top_first_at_one_height():
    top = np.full((20, 30), 10, np.uint8)
    bottom = np.full((40, 100), 200, np.uint8)
    out = lines.side_by_side((top, bottom), height=64, gap=0.5)
    assert out.shape == (64, 96 + 32 + 160)
    assert (out[:, :96 + 32] == 10).all() and (out[:, -160:] == 200).all()   # the gap repeats the top row's edge
    with pytest.raises(ValueError):
        lines.side_by_side(())


def test_a_square_plate_becomes_one_wide_line():
    img = _two_rows("XY", "987")
    out = lines.as_one_line(img)
    assert out.shape[0] == 64 and out.shape[1] > 2 * out.shape[0]
    assert lines.as_one_line(img, cut=img.shape[0] // 2).shape[0] == 64


def test_synthetic_two_row_plates_carry_the_row_between_their_rows():
    seen = 0
    for i in range(300):
        s = synth.render_plate(np.random.default_rng([11, i]))
        if s.cut is None:
            continue
        seen += 1
        assert 0 < s.cut < s.image.shape[0]
        assert lines.as_one_line(s.image, cut=s.cut).shape[0] == 64
    assert seen >= 20
