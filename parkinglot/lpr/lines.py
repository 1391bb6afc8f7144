"""Two-line plates as one line: find where a square plate's two rows of characters part,
and lay the rows side by side, so the one-line CTC reader reads the top row then the bottom
row (EU two-line and motorcycle plates, Brazilian motorcycle plates).

A CTC reader reads columns left to right; on a stacked plate a column holds a character of
each row, so the rows must be taken apart first. The locator does that in a frame (two
stacked character rows, ``PlateCandidate.line_crops``). A crop that is already a whole plate
is taken as two-line when it is square: plates of two rows are 1.1-1.5 times as wide as
high (EU 280x200 mm, Brazilian motorcycle 200x170 mm) and one-row plates about 2 times or
more (US 12x6 in, EU 520x110 mm), whatever the crop's resolution. Its rows part at the
emptiest band across its middle.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

SQUARE_ASPECT = 1.6      # width / height below which a whole-plate crop has two rows
SEARCH = (0.3, 0.7)      # the rows part within this share of the height
LINE_GAP = 0.5           # gap between the rows laid side by side, in row heights


def _ink_profile(gray: np.ndarray) -> np.ndarray:
    """Share of text pixels per row (text: the minority class of an Otsu split of the central
    columns, so the blue band of EU plates and the frame sides count less), lightly smoothed."""
    h, w = gray.shape
    core = gray[:, int(0.15 * w): max(int(0.15 * w) + 1, int(0.92 * w))]
    thr, _ = cv2.threshold(core, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = core <= thr
    ink = dark if dark.mean() < 0.5 else ~dark
    prof = ink.mean(axis=1).astype(np.float32)
    return np.convolve(prof, np.ones(3, np.float32) / 3, mode="same")


def is_square(gray: np.ndarray) -> bool:
    """Whether a whole-plate crop has the shape of a two-row plate."""
    h, w = gray.shape[:2]
    return h >= 8 and w < SQUARE_ASPECT * h


def find_cut(gray: np.ndarray, square: Optional[bool] = None) -> Optional[int]:
    """The row between the two rows of a square plate crop, or None for any other crop.
    ``square=True`` skips the shape test (a plate known to have two rows, e.g. a jittered
    training view of one)."""
    if not (is_square(gray) if square is None else square) or gray.shape[0] < 4:
        return None
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    h = gray.shape[0]
    prof = _ink_profile(gray)
    lo, hi = int(SEARCH[0] * h), max(int(SEARCH[0] * h) + 1, int(np.ceil(SEARCH[1] * h)))
    return lo + int(np.argmin(prof[lo:hi]))


def side_by_side(lines: Sequence[np.ndarray], height: int = 64, gap: float = LINE_GAP) -> np.ndarray:
    """Rows of characters brought to one height and laid left to right, ``gap`` heights apart
    (each row's own edge columns repeated into the gap, whatever the polarity)."""
    if not lines:
        raise ValueError("no rows to lay side by side")
    parts = []
    for k, ln in enumerate(lines):
        if ln.ndim == 3:
            ln = cv2.cvtColor(ln, cv2.COLOR_BGR2GRAY)
        lh, lw = ln.shape
        if lh == 0 or lw == 0:
            raise ValueError("empty row")
        nw = max(2, int(round(lw * height / lh)))
        ln = cv2.resize(ln, (nw, height), interpolation=cv2.INTER_AREA if lh > height else cv2.INTER_CUBIC)
        if k + 1 < len(lines):
            ln = cv2.copyMakeBorder(ln, 0, 0, 0, max(1, int(gap * height)), cv2.BORDER_REPLICATE)
        parts.append(ln)
    return np.ascontiguousarray(np.hstack(parts))


def as_one_line(gray: np.ndarray, cut: Optional[int] = None) -> np.ndarray:
    """A whole-plate crop as the reader reads it: a square (two-row) plate with its rows side
    by side, top row first; any other crop as it is. ``cut`` overrides the row found."""
    cut = find_cut(gray) if cut is None else cut
    if cut is None or not 0 < cut < gray.shape[0]:
        return gray
    return side_by_side((gray[:cut], gray[cut:]))
