"""Find licence-plate candidates in a frame and cut level, character-band crops for OCR.

Two detectors share one numba preprocessing pass (``kernels``):

* **character rows** - local-mean threshold in both polarities (two offsets, plus
  the first masks eroded vertically to cut characters loose from frames and dealer
  text), connected components, and chains of character-like blobs of similar height
  standing side by side, extended along their line across wider gaps (dash, emblem).
  They give the row's angle and the exact band of the characters, which is what the
  reader needs. Two such rows stacked and centred make a two-line plate. Where the
  characters stand in a frame's bar (a dealer frame over their feet) they and the bar
  are one blob; a fallback mask with long horizontal runs removed separates them, and
  its rows count only where no ordinary row was found.
* **edge blocks** - the vertical-edge (Sobel x) map closed horizontally: plates are
  dense, wide blocks of vertical strokes. They raise the score of character rows
  inside them, and stand alone (low score) where no row was found; such a crop is
  trimmed to its edge-dense rows instead.

Rows are scored on geometry (glyph count, even height and pitch, length) and pixels
(contrast, ink in the band versus just above and below), lose score where their
characters run into the frame border (cut-off plates, camera timestamps), are
de-duplicated, and the best ``top_k`` returned. ``corners`` are the estimated *plate*
outline (the character band grown by typical plate margins); ``crop`` is the character
band only, rectified from the full-resolution frame. OpenCV is used for resizes and the
final warp only.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import kernels as K

__all__ = ["PlateCandidate", "locate", "locate_timed", "LocatorParams"]


@dataclass(frozen=True)
class LocatorParams:
    """Tunables, in working-image pixels (the frame is brought to about 1280x720)."""

    work_pixels: int = 1280 * 720      # frames larger than this are downscaled for search
    min_side: int = 480                # smaller frames are upscaled (x2 at most)
    block: int = 25                    # local-mean window of the threshold
    offsets: tuple[int, ...] = (5, 12)  # threshold offsets (grey levels); a stricter one
                                        # separates characters that touch the frame
    char_h: tuple[int, int] = (9, 110)  # character height range
    char_aspect: tuple[float, float] = (0.08, 1.15)  # width / height
    char_fill: tuple[float, float] = (0.12, 0.95)
    min_chars: int = 3
    edge_thresh: int = 48              # |Sobel x| for the edge map
    split_erode: tuple[int, int] = (1, 3)  # also label one offset's masks eroded by this
                                        # (w, h), cutting thin links to frames; (0, 0): off
    split_mask: int = 0                # index into ``offsets`` of the masks to erode
    split_polarities: tuple[str, ...] = ("dark_on_light",)  # which of them
    bar_cut: int = 41                  # fallback: the split masks with horizontal runs at least this
                                        # long removed (a frame's bar the characters touch); 0: off
    consensus: float = 0.5             # bonus per other hypothesis agreeing on a plate
    max_gap: float = 2.5               # row extension across gaps (dash, emblem), in heights
    two_line_bonus: float = 0.3        # two stacked rows of one size: a two-line plate
    border_gap: float = 0.5            # rows whose characters come within this many heights of
    border_penalty: float = 3.0        # the frame border lose this much score (cut off, or the
                                        # camera's timestamp overlay); set a priori, not tuned
    max_rows: int = 12                 # rows per mask that get pixel-level scoring
    crop_height: int = 64              # output crop height (easyocr's recogniser uses 64)


DEFAULT_PARAMS = LocatorParams()


@dataclass(frozen=True)
class PlateCandidate:
    """One plate hypothesis. Coordinates are in the caller's frame pixels."""

    corners: np.ndarray   # (4, 2) float32: tl, tr, br, bl of the estimated plate
    score: float          # higher is better; comparable within one frame
    crop: np.ndarray      # grayscale uint8, level, trimmed to the character band
    polarity: str         # "dark_on_light" | "light_on_dark"
    lines: int            # 1 or 2 character rows
    line_crops: tuple[np.ndarray, ...] = field(default=(), repr=False)  # one per row
    source: str = "chars"  # "chars" | "edges": which detector found it
    angle: float = 0.0    # character-row angle in degrees (image y down)

    def axis_box(self) -> tuple[int, int, int, int]:
        """Axis-aligned (x, y, w, h) around ``corners``."""
        x0, y0 = np.floor(self.corners.min(axis=0))
        x1, y1 = np.ceil(self.corners.max(axis=0))
        return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


# ----------------------------------------------------------------------------- geometry helpers


@dataclass
class _Row:
    """A chain of character boxes (working-image coordinates)."""

    boxes: np.ndarray     # (n, 4) x, y, w, h
    polarity: str
    cx: float = 0.0
    cy: float = 0.0
    angle: float = 0.0    # radians
    u0: float = 0.0       # extent along the row direction, relative to (cx, cy)
    u1: float = 0.0
    v0: float = 0.0       # extent across it
    v1: float = 0.0
    height: float = 0.0   # median character height
    score: float = 0.0

    def fit(self) -> "_Row":
        # plain Python on a handful of boxes: cheaper than numpy's per-call overhead
        bl = self.boxes.tolist()
        n = len(bl)
        xc = [x + w / 2 for x, _, w, _ in bl]
        yc = [y + h / 2 for _, y, _, h in bl]
        hs = sorted(h for *_, h in bl)
        self.height = float(hs[n // 2] if n % 2 else (hs[n // 2 - 1] + hs[n // 2]) / 2)
        mx = sum(xc) / n
        my = sum(yc) / n
        sxx = sum((x - mx) ** 2 for x in xc)
        slope = sum((x - mx) * (y - my) for x, y in zip(xc, yc)) / sxx if sxx > 0 else 0.0
        # character boxes of a tilted row also grow in height; keep the fit sane
        slope = min(0.6, max(-0.6, slope))
        self.angle = math.atan(slope)
        self.cx, self.cy = mx, my
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        # project onto the row axes; the axis-aligned box of a tilted glyph overshoots,
        # so take the box centre +- its half height measured across the row
        u0 = v0 = math.inf
        u1 = v1 = -math.inf
        for (x, y, w, h), px, py in zip(bl, xc, yc):
            du = (px - mx) * ca + (py - my) * sa
            dv = -(px - mx) * sa + (py - my) * ca
            hw = w / 2 * ca + h / 2 * abs(sa)
            hh = max(h / 2 * ca - w / 2 * abs(sa), h * 0.35)
            u0, u1 = min(u0, du - hw), max(u1, du + hw)
            v0, v1 = min(v0, dv - hh), max(v1, dv + hh)
        self.u0, self.u1, self.v0, self.v1 = u0, u1, v0, v1
        return self

    def quad(self, mu0: float, mu1: float, mv0: float, mv1: float) -> np.ndarray:
        """Corners (tl, tr, br, bl) of the row's band grown by the given margins."""
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        pts = []
        for u, v in ((self.u0 - mu0, self.v0 - mv0), (self.u1 + mu1, self.v0 - mv0),
                     (self.u1 + mu1, self.v1 + mv1), (self.u0 - mu0, self.v1 + mv1)):
            pts.append((self.cx + u * ca - v * sa, self.cy + u * sa + v * ca))
        return np.array(pts, np.float32)


def _at_border(row: _Row, shape: tuple[int, ...], gap: float) -> bool:
    """Whether the row's characters reach to within ``gap`` row heights of the frame border.

    Such a row is either a plate the frame cuts off, whose reading cannot be complete, or
    text the camera burns into its frames (timestamp, camera name), which lives along the
    top and bottom edges. Either way it should not outrank a row standing clear inside."""
    q = row.quad(0, 0, 0, 0)
    margin = gap * row.height
    h, w = shape[:2]
    return bool(q[:, 0].min() < margin or q[:, 1].min() < margin or
                q[:, 0].max() > w - 1 - margin or q[:, 1].max() > h - 1 - margin)


def _only_new(extra: list[_Row], rows: list[_Row], max_overlap: float = 0.3) -> list[_Row]:
    """Fallback rows where no ordinary row was found. Where both found the plate the
    ordinary band is the better crop: cutting a frame's bar also cut the characters' feet,
    so the fallback band is often a part of the ordinary one (overlap is measured on
    the smaller box, not as IoU)."""
    if not extra or not rows:
        return extra
    a = np.array([_quad_box(r.quad(0, 0, 0, 0)) for r in extra], np.float64)
    b = np.array([_quad_box(r.quad(0, 0, 0, 0)) for r in rows], np.float64)
    inter, area_a, area_b = _intersections(a, b)
    smaller = np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)
    overlaps = (inter / smaller >= max_overlap).any(axis=1)
    return [r for r, o in zip(extra, overlaps) if not o]


def _quad_box(q: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = q.min(axis=0)
    x1, y1 = q.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas of (n, 4) and (m, 4) x0, y0, x1, y1 boxes, and each set's areas."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return ix * iy, (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) x0, y0, x1, y1 boxes."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


# ----------------------------------------------------------------------------- character rows


def _char_boxes(stats: np.ndarray, fill: np.ndarray, p: LocatorParams) -> np.ndarray:
    s = stats[1:]
    f = fill[1:]
    w = s[:, 2].astype(np.float32)
    h = s[:, 3].astype(np.float32)
    asp = w / np.maximum(h, 1)
    keep = ((h >= p.char_h[0]) & (h <= p.char_h[1]) & (asp >= p.char_aspect[0])
            & (asp <= p.char_aspect[1]) & (f >= p.char_fill[0]) & (f <= p.char_fill[1])
            & (s[:, 4] >= 12))
    return s[keep, :4].astype(np.int32)


def _chains(boxes: np.ndarray) -> list[np.ndarray]:
    """Group boxes that stand in a row: similar height, aligned, closely spaced."""
    if len(boxes) < 2:
        return []
    order = np.argsort(boxes[:, 0], kind="stable")
    b = boxes[order]
    root = K.link_rows(b)
    uniq, inv, counts = np.unique(root, return_inverse=True, return_counts=True)
    return [b[inv == k] for k in np.nonzero(counts >= 2)[0]]


def _extend_row(row: np.ndarray, boxes: np.ndarray, max_gap: float) -> np.ndarray:
    """Grow a chain along its line with boxes of the same height beyond wider gaps
    (a dash, a state emblem, a sticker), so the row covers the whole registration."""
    if max_gap <= 0 or len(boxes) <= len(row):
        return row
    h = float(np.median(row[:, 3]))
    xc = row[:, 0] + row[:, 2] / 2.0
    yc = row[:, 1] + row[:, 3] / 2.0
    slope = float(np.polyfit(xc, yc, 1)[0]) if np.ptp(xc) > 0 else 0.0
    slope = min(0.6, max(-0.6, slope))
    bx = boxes[:, 0] + boxes[:, 2] / 2.0
    by = boxes[:, 1] + boxes[:, 3] / 2.0
    line_y = yc.mean() + slope * (bx - xc.mean())
    ok = ((np.abs(by - line_y) <= 0.3 * h) & (boxes[:, 3] >= h / 1.3) & (boxes[:, 3] <= h * 1.3))
    cand = boxes[ok]
    if len(cand) == 0:
        return row
    cand = cand[np.argsort(cand[:, 0], kind="stable")]
    x0 = int(row[:, 0].min())
    x1 = int((row[:, 0] + row[:, 2]).max())
    added = []
    for b in cand.tolist():  # rightwards
        if b[0] >= x1 - 0.3 * b[2] and b[0] <= x1 + max_gap * h:
            added.append(b)
            x1 = max(x1, b[0] + b[2])
    for b in reversed(cand.tolist()):  # leftwards
        if b[0] + b[2] <= x0 + 0.3 * b[2] and b[0] + b[2] >= x0 - max_gap * h:
            added.append(b)
            x0 = min(x0, b[0])
    if not added:
        return row
    merged = np.vstack([row, np.array(added, row.dtype)])
    return np.unique(merged, axis=0)


def _cv(values: list[float]) -> float:
    """Coefficient of variation (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    m = sum(values) / n
    if m <= 0:
        return 1.0
    return math.sqrt(sum((v - m) ** 2 for v in values) / n) / m


def _row_score(row: _Row) -> float:
    """Geometry of a plate's character row: 5-8 glyphs, even height and pitch, ~4.5
    heights long, not steeply tilted."""
    bl = row.boxes.tolist()
    n = len(bl)
    hstd = _cv([h for *_, h in bl])
    xs = sorted(x + w / 2 for x, _, w, _ in bl)
    pitch = [b - a for a, b in zip(xs, xs[1:])]
    pitch_cv = _cv(pitch) if len(pitch) >= 2 else 0.5
    count = 1.0 - min(abs(n - 6.5), 5) / 5
    length = (row.u1 - row.u0) / max(row.height, 1)
    length_ok = 1.0 - min(abs(length - 4.5), 4.5) / 4.5
    tilt = abs(math.degrees(row.angle))
    return (2.0 * count + 1.5 * length_ok + 1.0 * (1 - min(hstd * 4, 1))
            + 1.0 * (1 - min(pitch_cv, 1)) + 0.5 * (1 - min(tilt / 30, 1)) + 0.1 * min(n, 8))


def _rows_from_mask(mask: np.ndarray, stats: np.ndarray, fill: np.ndarray, gray: np.ndarray,
                    polarity: str, p: LocatorParams) -> list[_Row]:
    boxes = _char_boxes(stats, fill, p)
    rows = []
    for g in _chains(boxes):
        if len(g) < p.min_chars:
            continue
        g = _extend_row(g, boxes, p.max_gap)
        r = _Row(g, polarity).fit()
        r.score = _row_score(r)
        rows.append(r)
    # pixel evidence only for the geometrically plausible rows: it is the costly part
    rows.sort(key=lambda r: -r.score)
    rows = rows[:p.max_rows]
    for r in rows:
        r.score += _band_score(r, gray, mask)
    return rows


def _band_score(row: _Row, gray: np.ndarray, mask: np.ndarray) -> float:
    """Evidence from pixels: a plate's characters stand on a plain, contrasting band,
    with little ink just above and below them (texture and grilles continue)."""
    b = row.boxes
    H, W = gray.shape
    x0 = int(b[:, 0].min())
    x1 = int((b[:, 0] + b[:, 2]).max())
    y0 = int(b[:, 1].min())
    y1 = int((b[:, 1] + b[:, 3]).max())
    h = max(row.height, 1.0)
    band_m = mask[y0:y1, x0:x1]
    band_g = gray[y0:y1, x0:x1]
    if band_m.size == 0:
        return 0.0
    ink = band_m > 0
    ink_band = float(ink.mean())
    a0, a1 = max(0, int(y0 - 0.45 * h)), max(0, int(y0 - 0.08 * h))
    c0, c1 = min(H, int(y1 + 0.08 * h)), min(H, int(y1 + 0.45 * h))
    strips = [mask[a0:a1, x0:x1], mask[c0:c1, x0:x1]]
    margin = [float((m > 0).mean()) for m in strips if m.size]
    ink_margin = min(margin) if margin else 0.5
    n_ink = int(ink.sum())
    if n_ink == 0 or n_ink == ink.size:
        return 0.0
    gi = band_g[ink].astype(np.float32)
    gb = band_g[~ink].astype(np.float32)
    contrast = abs(float(gi.mean()) - float(gb.mean())) / (float(gb.std()) + float(gi.std()) + 8.0)
    ink_ok = 1.0 - min(abs(ink_band - 0.35), 0.35) / 0.35
    return (1.5 * min(contrast, 2.0) + 1.0 * ink_ok
            + 2.0 * max(0.0, min(1.0, (ink_band - ink_margin) / max(ink_band, 1e-6))))


def _merge_lines(rows: list[_Row]) -> list[tuple[list[_Row], str]]:
    """Pair rows stacked like the two lines of a plate; every row also stands alone."""
    out: list[tuple[list[_Row], str]] = [([r], r.polarity) for r in rows]
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a.polarity != b.polarity:
                continue
            top, bot = (a, b) if a.cy < b.cy else (b, a)
            hh = max(top.height, bot.height)
            if min(top.height, bot.height) / hh < 0.75:
                continue
            gap = (bot.cy + bot.v0) - (top.cy + top.v1)
            if not (-0.2 * hh <= gap <= 0.9 * hh):
                continue
            ax0, ax1 = top.cx + top.u0, top.cx + top.u1
            bx0, bx1 = bot.cx + bot.u0, bot.cx + bot.u1
            # the lines of a plate are centred on each other
            if abs((ax0 + ax1) - (bx0 + bx1)) / 2 > 0.8 * hh:
                continue
            ov = min(ax1, bx1) - max(ax0, bx0)
            if ov < 0.6 * max(ax1 - ax0, bx1 - bx0):
                continue
            out.append(([top, bot], a.polarity))
    return out


# ----------------------------------------------------------------------------- edge blocks


def _edge_blocks(stats: np.ndarray, fill: np.ndarray) -> list[tuple[int, int, int, int]]:
    s = stats[1:]
    w, h = s[:, 2], s[:, 3]
    asp = w / np.maximum(h, 1)
    keep = (h >= 10) & (h <= 160) & (w >= 36) & (w <= 420) & (asp >= 1.6) & (asp <= 8) & (fill[1:] >= 0.45)
    return [tuple(int(v) for v in r[:4]) for r in s[keep]]


# ----------------------------------------------------------------------------- rectification


def _warp(gray: np.ndarray, quad: np.ndarray, out_h: int) -> np.ndarray:
    """Warp quad (tl, tr, br, bl; gray's pixels) to a level strip of height out_h."""
    wq = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    hq = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    out_w = max(8, int(round(out_h * wq / max(hq, 1))))
    dst = np.array([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    interp = cv2.INTER_AREA if hq > out_h * 1.5 else cv2.INTER_CUBIC
    return cv2.warpPerspective(gray, m, (out_w, out_h), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def _trim_edges_crop(crop: np.ndarray) -> np.ndarray:
    """Keep the rows of an edge-block crop where vertical strokes are dense."""
    gx = np.abs(cv2.Sobel(crop, cv2.CV_16S, 1, 0, ksize=3)).astype(np.float32)
    prof = gx.mean(axis=1)
    if prof.max() <= 0:
        return crop
    on = np.nonzero(prof >= 0.45 * prof.max())[0]
    y0, y1 = int(on[0]), int(on[-1]) + 1
    if y1 - y0 < crop.shape[0] // 4:
        return crop
    return crop[y0:y1]


# ----------------------------------------------------------------------------- main entry


def _work_scale(h: int, w: int, p: LocatorParams) -> float:
    if h * w > p.work_pixels:
        return math.sqrt(p.work_pixels / (h * w))
    if max(h, w) < p.min_side:
        return min(2.0, p.min_side / max(h, w))
    return 1.0


def locate_timed(image: np.ndarray, *, top_k: int = 5,
                 params: LocatorParams = DEFAULT_PARAMS) -> tuple[list[PlateCandidate], dict[str, float]]:
    """Like :func:`locate`, also returning stage timings in milliseconds:
    ``preprocess_ms`` (gray, resize and every numba pass down to component
    statistics), ``candidates_ms`` (grouping, scoring, de-duplication),
    ``rectify_ms`` (warps of the kept candidates) and ``total_ms``."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError("image must be a uint8 BGR (h, w, 3) or grayscale (h, w) array")
    if image.ndim == 3 and image.shape[2] != 3:
        raise ValueError(f"image must have 3 channels (BGR), got shape {image.shape}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    p = params
    t0 = time.perf_counter()
    gray_full = K.to_gray(image)
    H, W = gray_full.shape
    s = _work_scale(H, W, p)
    if s != 1.0:
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        gray = cv2.resize(gray_full, (max(1, round(W * s)), max(1, round(H * s))), interpolation=interp)
    else:
        gray = gray_full
    # every per-pixel pass (numba kernels), down to component statistics
    passes: list[tuple[str, np.ndarray, bool]] = []   # polarity, mask, fallback only
    for c in p.offsets:
        dark, light = K.adaptive_threshold_both(gray, p.block, c)
        passes += [("dark_on_light", dark, False), ("light_on_dark", light, False)]
    split = [(pol, m) for pol, m, _ in passes[2 * p.split_mask:2 * p.split_mask + 2] if pol in p.split_polarities]
    if p.split_erode[0] > 0:
        passes += [(pol, K.erode(m, p.split_erode), False) for pol, m in split]
    if p.bar_cut > 0:
        passes += [(pol, m & ~K.open_(m, (p.bar_cut, 1)), True) for pol, m in split]
    labelled = [(pol, m, fallback, *K.connected_components(m, 8, labels=False)[1:]) for pol, m, fallback in passes]
    edge_bin = K.sobel_x(gray, threshold=p.edge_thresh)
    edge_blk = K.open_(K.close(edge_bin, (17, 3)), (9, 5))
    _, edge_stats, edge_fill = K.connected_components(edge_blk, 8, labels=False)
    t1 = time.perf_counter()

    rows: list[_Row] = []
    fallback_rows: list[_Row] = []
    for pol, m, fallback, stats, fill in labelled:
        (fallback_rows if fallback else rows).extend(_rows_from_mask(m, stats, fill, gray, pol, p))
    rows += _only_new(fallback_rows, rows)
    hyps: list[dict] = []
    for members, pol in _merge_lines(rows):
        at_border = any(_at_border(r, gray.shape, p.border_gap) for r in members)
        if len(members) == 1:
            r = members[0]
            sc = r.score - p.border_penalty * at_border
            band = r.quad(0.45 * r.height, 0.45 * r.height, 0.12 * r.height, 0.12 * r.height)
            plate = r.quad(0.6 * r.height, 0.6 * r.height, 0.3 * r.height, 0.3 * r.height)
            hyps.append(dict(score=sc, plate=plate, bands=[band], pol=pol, lines=1, angle=r.angle, src="chars",
                             box=_quad_box(plate)))
        else:
            top, bot = members
            sc = max(top.score, bot.score) + p.two_line_bonus - p.border_penalty * at_border
            bands = [r.quad(0.45 * r.height, 0.45 * r.height, 0.12 * r.height, 0.12 * r.height) for r in members]
            allq = np.vstack(bands)
            # plate: both bands' hull along the lower row's direction
            ang = bot.angle
            ca, sa = math.cos(ang), math.sin(ang)
            cx, cy = allq[:, 0].mean(), allq[:, 1].mean()
            u = (allq[:, 0] - cx) * ca + (allq[:, 1] - cy) * sa
            v = -(allq[:, 0] - cx) * sa + (allq[:, 1] - cy) * ca
            mh = 0.4 * max(top.height, bot.height)
            pts = [(u.min() - mh, v.min() - mh * 0.5), (u.max() + mh, v.min() - mh * 0.5),
                   (u.max() + mh, v.max() + mh * 0.5), (u.min() - mh, v.max() + mh * 0.5)]
            plate = np.array([(cx + a * ca - b * sa, cy + a * sa + b * ca) for a, b in pts], np.float32)
            hyps.append(dict(score=sc, plate=plate, bands=bands, pol=pol, lines=2, angle=ang, src="chars",
                             box=_quad_box(plate)))

    # edge blocks: bonus to character rows inside one, and stand-alone fallbacks
    blocks = _edge_blocks(edge_stats, edge_fill)
    char_boxes = np.array([hy["box"] for hy in hyps], np.float64).reshape(-1, 4)
    if blocks:
        eb = np.array([(x, y, x + w, y + h) for x, y, w, h in blocks], np.float64)
        m = _iou_matrix(char_boxes, eb) >= 0.3
        for i in np.nonzero(m.any(axis=1))[0]:
            hyps[i]["score"] += 0.7
        for (x, y, w, h), matched in zip(blocks, m.any(axis=0)):
            if matched:
                continue
            sc = 1.5 + 1.0 * (1 - min(abs(w / h - 3.5), 3) / 3)
            q = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
            hyps.append(dict(score=sc, plate=q, bands=[q], pol="unknown", lines=1, angle=0.0, src="edges",
                             box=(float(x), float(y), float(x + w), float(y + h))))

    boxes = np.array([hy["box"] for hy in hyps], np.float64).reshape(-1, 4)
    ious = _iou_matrix(boxes, boxes)
    if p.consensus > 0 and len(hyps):
        # the same plate found again in another mask/polarity pass is evidence
        pol = np.array([hy["pol"] for hy in hyps])
        chars = np.array([hy["src"] == "chars" for hy in hyps])
        agree = ((ious >= 0.5) & (pol[:, None] == pol[None, :])).sum(axis=1) - 1
        for i in np.nonzero(chars)[0]:
            hyps[i]["score"] += p.consensus * min(int(agree[i]), 3)
    order = sorted(range(len(hyps)), key=lambda i: -hyps[i]["score"])
    keep_idx: list[int] = []
    for i in order:
        if all(ious[i, j] < 0.4 for j in keep_idx):
            keep_idx.append(i)
            if len(keep_idx) >= top_k:
                break
    kept = [hyps[i] for i in keep_idx]
    t2 = time.perf_counter()

    inv = 1.0 / s
    out: list[PlateCandidate] = []
    for hy in kept:
        bands = [b * inv for b in hy["bands"]]
        crops = tuple(_warp(gray_full, b, p.crop_height) for b in bands)
        pol = hy["pol"]
        if hy["src"] == "edges":
            crops = (_trim_edges_crop(crops[0]),)
            pol = "dark_on_light" if float(np.median(crops[0])) >= 110 else "light_on_dark"
        crop = crops[0] if len(crops) == 1 else _stack(crops)
        out.append(PlateCandidate(corners=(hy["plate"] * inv).astype(np.float32), score=float(hy["score"]),
                                  crop=crop, polarity=pol, lines=hy["lines"], line_crops=crops,
                                  source=hy["src"], angle=math.degrees(hy["angle"])))
    t3 = time.perf_counter()
    timings = {"preprocess_ms": (t1 - t0) * 1e3, "candidates_ms": (t2 - t1) * 1e3,
               "rectify_ms": (t3 - t2) * 1e3, "total_ms": (t3 - t0) * 1e3}
    return out, timings


def _stack(crops: tuple[np.ndarray, ...]) -> np.ndarray:
    w = max(c.shape[1] for c in crops)
    return np.vstack([cv2.resize(c, (w, c.shape[0])) if c.shape[1] != w else c for c in crops])


def locate(image: np.ndarray, *, top_k: int = 5, params: LocatorParams = DEFAULT_PARAMS) -> list[PlateCandidate]:
    """Plate candidates in a BGR uint8 frame (or grayscale), best first, at most ``top_k``."""
    return locate_timed(image, top_k=top_k, params=params)[0]
