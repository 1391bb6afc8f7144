"""Synthetic licence-plate crops for training the plate recogniser.

Texts are drawn at random from per-region layout patterns (never from real data).
Glyphs come from whatever sans / monospace TrueType or OpenType fonts the machine
has (Debian ``fonts-*`` packages, see ``models/README.md``); with none installed
the generator falls back to Pillow's built-in font and OpenCV's Hershey fonts, so
it always works, only with less variety.

The output is a raw grayscale crop as a camera and a locator would deliver it
(low resolution, blur, JPEG, perspective, either polarity); the recogniser's
``normalize_crop`` is applied afterwards, exactly as at inference time.
"""
from __future__ import annotations

import glob
import os
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LETTERS = string.ascii_uppercase
DIGITS = string.digits
ALNUM = DIGITS + LETTERS
# Letters of a region's issued serials. US states leave I, O and Q out of their serials
# because on most state plates they are drawn like 1 and 0 (AAMVA practice); a generator
# that puts them in letter slots teaches the reader that a round glyph is as often an O as
# a 0, which on a US plate it is not. Vanity layouts ("A") keep the full alphabet.
SERIAL_LETTERS = {"us": "".join(c for c in LETTERS if c not in "IOQ")}

# Layout patterns: L = letter, 9 = digit, A = letter or digit; anything else is a
# separator drawn on the plate but absent from the label. "|" breaks a two-line plate.
PATTERNS: dict[str, tuple[str, ...]] = {
    "us": (
        "LLL 9999", "9LLL999", "LLL 999", "999 LLL", "9LL 999", "LL 99999", "99L 999",
        "LLL 9LL", "9L 99999", "LLLL 99", "999 9LL", "LL9 9LL", "9LLL 99", "99 LLL99",
        "L99 9LL", "LLL-9999", "999-LLL", "9-99999", "AAAAAA", "AAAAAAA", "AAAAA", "AAAA",
        "AAAAAAAA", "AAA", "AA",
    ),
    "eu": (
        "L LL 999", "LL LL 99", "LLL L 9999", "LL L 999", "L L 9999",   # Germany
        "LL-999-LL",                                                       # France
        "LL 999LL",                                                        # Italy
        "9999 LLL", "L 9999 LL",                                           # Spain (new, old)
        "LL-999-L", "99-LLL-9", "L-999-LL", "LL-99-LL", "9-LLL-99",        # Netherlands
        "LL 99999", "LLL 9999L", "LL 9LL99", "LLL 99LL",                   # Poland
        "LL99 LLL",                                                        # United Kingdom
        "L 999 LLL", "9LLL999", "LLL-999", "999-LL-99",                    # misc. national
        "LL|9999", "LL 9|999", "LLL|999", "L 99|999L", "99|LLL99", "LL|999L", "L|99999",  # two-row
    ),
    "br": ("LLL-9999", "LLL9L99", "LLL 9999", "LLL|9999"),
}
REGIONS: tuple[str, ...] = tuple(PATTERNS)

# Generic words for the state/country/slogan lines above and below the number.
_WORDS = (
    "CALIFORNIA", "TEXAS", "FLORIDA", "NEW YORK", "OHIO", "ILLINOIS", "ARIZONA", "NEVADA",
    "OREGON", "GEORGIA", "VIRGINIA", "MARYLAND", "IOWA", "UTAH", "MAINE", "ALASKA",
    "NEW JERSEY", "COLORADO", "MONTANA", "IDAHO", "KANSAS", "INDIANA", "DELAWARE",
    "Sunshine State", "Garden State", "Great Lakes", "The First State", "Explore",
    "BRASIL", "SAO PAULO", "RIO DE JANEIRO", "MINAS GERAIS", "BAHIA", "PARANA",
    "MERCOSUL", "DEUTSCHLAND", "FRANCE", "ITALIA", "ESPANA", "NEDERLAND", "POLSKA",
    "dealer", "www.dealer.com", "Land of Lincoln", "Grand Canyon State", "Wild Wonderful",
)


@dataclass(frozen=True)
class PlateSample:
    image: np.ndarray   # grayscale uint8 crop, any size
    text: str           # label, A-Z0-9 only
    region: str
    cut: int | None = None   # two-row plates: the image row between the rows (lines.side_by_side)


def random_plate_text(rng: np.random.Generator, region: str | None = None) -> tuple[str, str, str]:
    """Return ``(layout, label, region)``: layout keeps separators and ``|``, label is A-Z0-9."""
    region = region or REGIONS[int(rng.integers(len(REGIONS)))]
    pattern = PATTERNS[region][int(rng.integers(len(PATTERNS[region])))]
    letters = SERIAL_LETTERS.get(region, LETTERS)
    out = []
    for ch in pattern:
        if ch == "L":
            out.append(letters[rng.integers(len(letters))])
        elif ch == "9":
            out.append(DIGITS[rng.integers(10)])
        elif ch == "A":
            out.append(ALNUM[rng.integers(36)])
        else:
            out.append(ch)
    layout = "".join(out)
    if region == "us" and "|" not in layout and rng.random() < 0.06:
        # stacked two-line variant of a generic plate
        label = "".join(c for c in layout if c in ALNUM)
        cut = int(rng.integers(2, max(3, len(label) - 1))) if len(label) >= 4 else 1
        layout = label[:cut] + "|" + label[cut:]
    label = "".join(c for c in layout if c in ALNUM)
    return layout, label, region


# --------------------------------------------------------------------------- fonts
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"))
_FONT_SKIP = ("italic", "oblique", "thin", "extralight", "symbol", "math", "serif", "smallcaps",
              "z003", "d050000l", "bookman", "schoolbook", "palladio", "c059", "p052", "roman",
              "times", "tinos", "urwgothic", "emoji", "cjk", "light", "script", "hand", "stencil",
              "hairline", "tamil", "extended", "wide", "condit", "[")


@lru_cache(maxsize=1)
def find_fonts() -> tuple[str, ...]:
    """Sans / condensed / monospace font files usable for plates (may be empty)."""
    found: set[str] = set()
    for root in _FONT_DIRS:
        for ext in ("ttf", "otf"):
            found.update(glob.glob(os.path.join(root, "**", f"*.{ext}"), recursive=True))
    keep = []
    seen_names: set[str] = set()
    for path in sorted(found):
        name = os.path.basename(path).lower()
        if any(s in name for s in _FONT_SKIP) or name in seen_names or not _plain_zero(path):
            continue
        seen_names.add(name)
        keep.append(path)
    return tuple(keep)


def _plain_zero(path: str) -> bool:
    """Whether the font's ``0`` is an empty oval. Plates never use slashed or dotted
    zeros (programmers' monospace faces do); a reader trained on them learns a 0 that
    no plate shows and separates it worse from D and O."""
    try:
        m = _glyph_mask("0", ("pil", path), 64, 0)
    except OSError:
        return False
    h, w = m.shape
    centre = m[int(h * 0.3):int(h * 0.7), int(w * 0.35):int(w * 0.65)]
    return centre.size > 0 and float((centre > 128).mean()) < 0.15


def _pick_font(rng: np.random.Generator, fonts: Sequence[FontSpec]) -> FontSpec:
    """A font with every family (font directory) equally likely, so a package shipping
    thirty weights and widths does not crowd out one that ships two."""
    families = _families(tuple(fonts))
    members = families[int(rng.integers(len(families)))]
    return members[int(rng.integers(len(members)))]


@lru_cache(maxsize=8)
def _families(fonts: tuple[FontSpec, ...]) -> tuple[tuple[FontSpec, ...], ...]:
    groups: dict[str, list[FontSpec]] = {}
    for f in fonts:
        key = os.path.dirname(f[1]) if f[0] == "pil" and isinstance(f[1], str) else f[0]
        groups.setdefault(key, []).append(f)
    return tuple(tuple(g) for _, g in sorted(groups.items()))


@lru_cache(maxsize=256)
def _pil_font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        try:
            return ImageFont.load_default(size=size)
        except (TypeError, OSError):  # Pillow without FreeType
            return ImageFont.load_default()
    return ImageFont.truetype(path, size)


_HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN)
FontSpec = tuple[str, object]   # ("pil", path|None) or ("hershey", face)


def font_choices(fonts: Sequence[str] | None = None) -> list[FontSpec]:
    """Installed fonts if any, else Pillow's default font and OpenCV Hershey faces."""
    files = list(find_fonts() if fonts is None else fonts)
    if files:
        return [("pil", f) for f in files]
    return [("pil", None)] + [("hershey", h) for h in _HERSHEY]


# --------------------------------------------------------------------------- drawing
def _glyph_mask(ch: str, font: FontSpec, size: int, bold: int) -> np.ndarray:
    """Tight ink mask (uint8 0..255) of one character with cap height ~= size."""
    kind, ref = font
    if kind == "hershey":
        scale = size / 22.0
        thick = max(1, int(size / 9) + bold)
        (w, h), base = cv2.getTextSize(ch, ref, scale, thick)
        canvas = np.zeros((h + base + 2 * thick + 4, w + 2 * thick + 4), np.uint8)
        cv2.putText(canvas, ch, (thick + 2, h + thick + 2), ref, scale, 255, thick, cv2.LINE_AA)
    else:
        pil = _pil_font(ref, int(size * 1.4))
        box = pil.getbbox(ch)
        w, h = max(1, box[2] - box[0]), max(1, box[3] - box[1])
        img = Image.new("L", (w + 8 + 2 * bold, h + 8 + 2 * bold), 0)
        ImageDraw.Draw(img).text((4 + bold - box[0], 4 + bold - box[1]), ch, font=pil, fill=255,
                                 stroke_width=bold, stroke_fill=255)
        canvas = np.asarray(img)
    ys, xs = np.nonzero(canvas > 40)
    if len(ys) == 0:
        return np.zeros((size, max(2, size // 3)), np.uint8)
    return np.ascontiguousarray(canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def _line_mask(rng: np.random.Generator, text: str, font: FontSpec, cap: int,
               condense: float, bold: int) -> np.ndarray:
    """Ink mask of one line of plate characters; separators become gaps, dashes or dots."""
    pieces: list[np.ndarray] = []
    gap = max(1, int(cap * rng.uniform(0.05, 0.2)))
    for ch in text:
        if ch in ALNUM:
            g = _glyph_mask(ch, font, cap, bold)
            h = cap
            w = max(2, int(round(g.shape[1] * cap / max(1, g.shape[0]) * condense)))
            if ch in "1I" and w < cap * 0.25:
                w = w  # keep narrow glyphs narrow
            g = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
            pieces.append(g)
        else:
            w = int(cap * rng.uniform(0.25, 0.6))
            sep = np.zeros((cap, w), np.uint8)
            if ch == "-" or (ch == " " and rng.random() < 0.15):
                t = max(1, cap // 9)
                sep[cap // 2 - t:cap // 2 + t, w // 6: w - w // 6] = 255
            elif ch == "·" or (ch == " " and rng.random() < 0.15):
                cv2.circle(sep, (w // 2, cap // 2), max(1, cap // 10), 255, -1)
            pieces.append(sep)
        pieces.append(np.zeros((cap, gap), np.uint8))
    return np.hstack(pieces[:-1])


def _small_text(rng: np.random.Generator, fonts: list[FontSpec], height: int) -> np.ndarray:
    word = _WORDS[int(rng.integers(len(_WORDS)))]
    font = _pick_font(rng, fonts)
    if font[0] == "hershey":
        scale = height / 22.0
        (w, h), base = cv2.getTextSize(word, font[1], scale, 1)
        m = np.zeros((h + base + 4, w + 4), np.uint8)
        cv2.putText(m, word, (2, h + 2), font[1], scale, 255, 1, cv2.LINE_AA)
    else:
        pil = _pil_font(font[1], max(6, int(height * 1.3)))
        box = pil.getbbox(word)
        img = Image.new("L", (max(1, box[2] - box[0]) + 4, max(1, box[3] - box[1]) + 4), 0)
        ImageDraw.Draw(img).text((2 - box[0], 2 - box[1]), word, font=pil, fill=255)
        m = np.asarray(img)
    return m


def _paste_max(dst: np.ndarray, src: np.ndarray, y: int, x: int) -> None:
    h = min(src.shape[0], dst.shape[0] - y)
    w = min(src.shape[1], dst.shape[1] - x)
    if h > 0 and w > 0 and y >= 0 and x >= 0:
        np.maximum(dst[y:y + h, x:x + w], src[:h, :w], out=dst[y:y + h, x:x + w])


def _background(rng: np.random.Generator, h: int, w: int, level: float, spread: float) -> np.ndarray:
    """Plate background: a level, a smooth gradient and a few faint graphics."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = rng.uniform(-1, 1, 2)
    grad = (a * xx / w + b * yy / h) * spread * rng.uniform(0.2, 1.0)
    bg = np.full((h, w), level, np.float32) + grad
    for _ in range(int(rng.integers(0, 4))):
        shade = rng.uniform(-spread, spread) * 1.5
        layer = np.zeros((h, w), np.uint8)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.ellipse(layer, (cx, cy), (int(rng.integers(5, w // 2 + 6)), int(rng.integers(5, h))),
                        float(rng.uniform(0, 180)), 0, 360, 255, -1)
        else:
            cv2.line(layer, (0, cy), (w, int(rng.integers(0, h))), 255, int(rng.integers(2, max(3, h // 6))))
        bg += layer.astype(np.float32) / 255.0 * shade
    return bg


def render_plate(rng: np.random.Generator, region: str | None = None,
                 fonts: list[FontSpec] | None = None) -> PlateSample:
    """Render one random plate and return it as a camera-like grayscale crop."""
    fonts = fonts or font_choices()
    layout, label, region = random_plate_text(rng, region)
    font = _pick_font(rng, fonts)
    cap = 48
    condense = rng.uniform(0.6, 1.1)
    bold = int(rng.integers(0, 3))
    lines = layout.split("|")
    line_masks = [_line_mask(rng, ln, font, cap, condense, bold) for ln in lines]
    if len(line_masks) == 2 and rng.random() < 0.5:  # smaller upper line
        m = line_masks[0]
        line_masks[0] = cv2.resize(m, (max(2, int(m.shape[1] * 0.6)), int(cap * 0.6)))
    text_w = max(m.shape[1] for m in line_masks)
    line_gap = int(cap * rng.uniform(0.15, 0.35))
    text_h = sum(m.shape[0] for m in line_masks) + line_gap * (len(line_masks) - 1)

    # plate canvas around the text block
    mx = int(cap * rng.uniform(0.25, 1.0))
    top_h = int(cap * rng.uniform(0.3, 0.9)) if rng.random() < 0.6 else int(cap * rng.uniform(0.1, 0.3))
    bot_h = int(cap * rng.uniform(0.3, 0.8)) if rng.random() < 0.5 else int(cap * rng.uniform(0.1, 0.3))
    band_left = 0
    if (region in ("eu", "br") and rng.random() < 0.5) or rng.random() < 0.05:
        band_left = int(cap * rng.uniform(0.4, 0.7))
    ph, pw = top_h + text_h + bot_h, band_left + 2 * mx + text_w
    ink = np.zeros((ph, pw), np.uint8)
    y = top_h
    for m in line_masks:
        _paste_max(ink, m, y, band_left + mx + (text_w - m.shape[1]) // 2)
        y += m.shape[0] + line_gap
    text_box = (band_left + mx, top_h, text_w, text_h)
    if top_h > cap * 0.3 and rng.random() < 0.8:
        st = _small_text(rng, fonts, int(top_h * rng.uniform(0.45, 0.75)))
        st = cv2.resize(st, (min(st.shape[1], pw - 4), st.shape[0]))
        _paste_max(ink, st, max(0, (top_h - st.shape[0]) // 2), max(0, (pw - st.shape[1]) // 2))
    if bot_h > cap * 0.3 and rng.random() < 0.7:
        st = _small_text(rng, fonts, int(bot_h * rng.uniform(0.4, 0.7)))
        st = cv2.resize(st, (min(st.shape[1], pw - 4), st.shape[0]))
        _paste_max(ink, st, ph - bot_h + max(0, (bot_h - st.shape[0]) // 2), max(0, (pw - st.shape[1]) // 2))
    if rng.random() < 0.15:  # small sticker / emblem between characters
        cv2.circle(ink, (int(rng.integers(text_box[0], text_box[0] + text_w)), top_h + text_h // 2),
                   int(cap * rng.uniform(0.1, 0.25)), int(rng.integers(80, 256)), -1)

    # intensities and polarity (gray renders of coloured plates have low contrast)
    dark_text = rng.random() < 0.7
    contrast = rng.uniform(0.3, 1.0) if rng.random() < 0.35 else rng.uniform(0.7, 1.0)
    bg_level = rng.uniform(150, 245) if dark_text else rng.uniform(15, 110)
    fg_level = bg_level - (rng.uniform(90, 220) * contrast) if dark_text else bg_level + rng.uniform(90, 220) * contrast
    plate = _background(rng, ph, pw, bg_level, rng.uniform(5, 50))
    if band_left:
        plate[:, :band_left] = rng.uniform(20, 120)
    a = ink.astype(np.float32) / 255.0
    plate = plate * (1 - a) + fg_level * a
    if rng.random() < 0.45:  # frame
        t = int(rng.integers(1, max(2, cap // 8)))
        cv2.rectangle(plate, (t, t), (pw - 1 - t, ph - 1 - t), float(fg_level if rng.random() < 0.6 else bg_level * 0.5), t)
    if rng.random() < 0.35:  # bolts
        for bx in (pw // 4, 3 * pw // 4):
            by = int(top_h * rng.uniform(0.3, 0.7)) if rng.random() < 0.7 else ph - bot_h // 2
            cv2.circle(plate, (bx, by), max(2, cap // 10), float(rng.uniform(40, 220)), -1)
    if rng.random() < 0.4:  # dirt
        dirt = (rng.random((max(2, ph // 8), max(2, pw // 8))) < rng.uniform(0.05, 0.3)).astype(np.float32)
        dirt = cv2.GaussianBlur(cv2.resize(dirt, (pw, ph)), (0, 0), cap / 10)
        plate = plate - dirt * rng.uniform(20, 80)

    # surround: the plate sits on a car; the crop may include some of it
    pad = int(cap * 1.5)
    world = np.full((ph + 2 * pad, pw + 2 * pad), rng.uniform(0, 255), np.float32)
    world += cv2.resize(rng.normal(0, 25, (6, 12)).astype(np.float32), (pw + 2 * pad, ph + 2 * pad))
    world[pad:pad + ph, pad:pad + pw] = plate

    # crop region in world coordinates: tight character band or whole plate
    tx, ty, tw, th = text_box
    if rng.random() < 0.6:
        x0 = pad + tx - cap * rng.uniform(0.05, 0.45)
        x1 = pad + tx + tw + cap * rng.uniform(0.05, 0.45)
        y0 = pad + ty - cap * rng.uniform(-0.03, 0.3)
        y1 = pad + ty + th + cap * rng.uniform(-0.03, 0.3)
    else:
        x0 = pad - cap * rng.uniform(-0.1, 0.3)
        x1 = pad + pw + cap * rng.uniform(-0.1, 0.3)
        y0 = pad - cap * rng.uniform(-0.1, 0.3)
        y1 = pad + ph + cap * rng.uniform(-0.1, 0.3)
    src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    jit = cap * rng.uniform(0.0, 0.1)
    src += rng.uniform(-jit, jit, (4, 2)).astype(np.float32)
    ang = np.deg2rad(float(np.clip(rng.normal(0, 2.0), -5, 5)))
    c = src.mean(axis=0)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]], np.float32)
    src = (src - c) @ rot.T + c

    # output resolution: character height 8..40 px as cameras see them
    char_px = rng.uniform(10, 40) if rng.random() < 0.8 else rng.uniform(40, 64)
    s = char_px / cap
    ow = max(8, int((x1 - x0) * s))
    oh = max(6, int((y1 - y0) * s))
    dst = np.float32([[0, 0], [ow, 0], [ow, oh], [0, oh]])
    if s < 0.7:  # pre-blur against aliasing, like a lens would
        world = cv2.GaussianBlur(world, (0, 0), 0.5 / s)
    warp = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(world, warp, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = _degrade(rng, out)
    cut = None
    if len(line_masks) == 2:   # the middle of the gap between the rows, through the same warp
        gap_y = pad + top_h + line_masks[0].shape[0] + line_gap / 2
        p = cv2.perspectiveTransform(np.float32([[[pad + tx + tw / 2, gap_y]]]), warp)[0, 0]
        cut = int(np.clip(round(float(p[1])), 1, out.shape[0] - 1))
    return PlateSample(image=out, text=label, region=region, cut=cut)


def _degrade(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Motion blur, defocus, noise and JPEG artefacts."""
    if rng.random() < 0.3:
        k = int(rng.integers(1, 4))
        kern = np.zeros((2 * k + 1, 2 * k + 1), np.float32)
        ang = rng.uniform(0, np.pi)
        dx, dy = np.cos(ang) * k, np.sin(ang) * k
        cv2.line(kern, (int(k - dx), int(k - dy)), (int(k + dx), int(k + dy)), 1.0, 1)
        img = cv2.filter2D(img, -1, kern / max(kern.sum(), 1e-6))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9))
    if rng.random() < 0.6:
        img = img + rng.normal(0, rng.uniform(1, 10), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 85))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return img


def generate(n: int, seed: int, region: str | None = None,
             fonts: list[FontSpec] | None = None) -> list[PlateSample]:
    """``n`` samples; sample ``i`` depends only on ``(seed, i)`` so pools can be split across workers."""
    fonts = fonts or font_choices()
    return [render_plate(np.random.default_rng([seed, i]), region, fonts) for i in range(n)]


def is_two_line(seed: int, i: int) -> bool:
    """Whether sample ``i`` of the stream for ``seed`` is a two-line plate (cheap: text draw only)."""
    layout, _, _ = random_plate_text(np.random.default_rng([seed, i]))
    return "|" in layout


def generate_range(seed: int, start: int, stop: int, fonts: Sequence[str] | None = None) -> list[PlateSample]:
    """Samples ``start..stop-1`` of the stream for ``seed`` (for worker processes)."""
    choices = font_choices(fonts)
    return [render_plate(np.random.default_rng([seed, i]), None, choices) for i in range(start, stop)]
