"""Synthetic plate frames for the locator tests (no external data needed).

A plate is rendered with OpenCV's Hershey fonts (random characters, either polarity,
one or two lines), warped with a small rotation and perspective onto a textured,
noisy background, then blurred and noised like a camera frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

ALNUM = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)


@dataclass(frozen=True)
class SynthFrame:
    image: np.ndarray          # BGR uint8
    box: tuple[int, int, int, int]  # axis-aligned plate box x, y, w, h
    quad: np.ndarray           # plate corners tl, tr, br, bl (float32)
    angle: float               # rotation of the plate in degrees (image y down)
    polarity: str
    lines: int
    text: str


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    small = rng.integers(40, 200, (max(2, h // 40), max(2, w // 40), 3), dtype=np.uint8)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    for _ in range(int(rng.integers(6, 14))):  # clutter: bars, boxes, lines
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(-200, 200)), y0 + int(rng.integers(-60, 60))
        if rng.random() < 0.5:
            cv2.line(bg, (x0, y0), (x1, y1), c, int(rng.integers(1, 6)))
        else:
            cv2.rectangle(bg, (x0, y0), (x1, y1), c, -1 if rng.random() < 0.5 else 2)
    bg += rng.normal(0, 8, bg.shape).astype(np.int16)
    return np.clip(bg, 0, 255).astype(np.uint8)


def _render_plate(rng: np.random.Generator, lines: int, dark_on_light: bool) -> tuple[np.ndarray, str]:
    font = FONTS[int(rng.integers(len(FONTS)))]
    n = int(rng.integers(5, 8)) if lines == 1 else int(rng.integers(3, 5))
    rows = ["".join(rng.choice(list(ALNUM), n)) for _ in range(lines)]
    scale, thick = 2.0, 5
    sizes = [cv2.getTextSize(r, font, scale, thick) for r in rows]
    tw = max(s[0][0] for s in sizes)
    th = max(s[0][1] for s in sizes)
    pad_x, pad_y, gap = int(0.35 * th), int(0.45 * th), int(0.45 * th)
    w = tw + 2 * pad_x
    h = lines * th + (lines - 1) * gap + 2 * pad_y
    bg, fg = (235, 30) if dark_on_light else (35, 230)
    bg += int(rng.integers(-20, 15))
    plate = np.full((h, w), bg, np.uint8)
    cv2.rectangle(plate, (2, 2), (w - 3, h - 3), fg, 3)  # frame, close to the characters
    y = pad_y + th
    for r, ((rw, _), _) in zip(rows, sizes):
        cv2.putText(plate, r, (pad_x + (tw - rw) // 2, y), font, scale, fg, thick, cv2.LINE_AA)
        y += th + gap
    return plate, " ".join(rows)


def make_frame(seed: int, *, size: tuple[int, int] = (640, 400), lines: int | None = None,
               dark_on_light: bool | None = None) -> SynthFrame:
    """One frame with exactly one plate, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    fw, fh = size
    lines = lines if lines is not None else (2 if rng.random() < 0.25 else 1)
    dol = dark_on_light if dark_on_light is not None else bool(rng.random() < 0.6)
    plate, text = _render_plate(rng, lines, dol)
    ph, pw = plate.shape
    target_w = float(rng.uniform(110, 240)) if lines == 1 else float(rng.uniform(90, 150))
    s = target_w / pw
    angle = float(rng.uniform(-8, 8))
    a = math.radians(angle)
    cx = float(rng.uniform(0.3, 0.7)) * fw
    cy = float(rng.uniform(0.35, 0.7)) * fh
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    half = np.array([[-pw / 2, -ph / 2], [pw / 2, -ph / 2], [pw / 2, ph / 2], [-pw / 2, ph / 2]]) * s
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    dst = half @ rot.T
    dst += rng.uniform(-0.04, 0.04, dst.shape) * target_w  # mild perspective
    dst = (dst + [cx, cy]).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    frame = _background(rng, fh, fw)
    warped = cv2.warpPerspective(plate, m, (fw, fh), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full_like(plate, 255), m, (fw, fh), flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    tint = rng.uniform(0.85, 1.0, 3)
    plate_bgr = warped[..., None].astype(np.float32) * tint
    frame = (frame.astype(np.float32) * (1 - alpha) + plate_bgr * alpha)
    k = int(rng.choice([1, 3, 3, 5]))
    if k > 1:
        frame = cv2.GaussianBlur(frame, (k, k), 0)
    frame += rng.normal(0, 4, frame.shape)
    image = np.clip(frame, 0, 255).astype(np.uint8)
    x0, y0 = np.floor(dst.min(axis=0)).astype(int)
    x1, y1 = np.ceil(dst.max(axis=0)).astype(int)
    return SynthFrame(image, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)), dst, angle,
                      "dark_on_light" if dol else "light_on_dark", lines, text)


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
