"""Fine-tune easyocr's english_g2 recogniser on licence plates (CTC, alphabet 0-9A-Z).

    python -m parkinglot.lpr.train [--data ../shared/data] [--head-steps 700] [--steps 1200]

Stage 1 ("head") trains the BiLSTMs and the classifier on cached features of the
frozen CNN (cheap); stage 2 ("full") fine-tunes the whole network (bar its first
conv layers) from the best stage-1 weights. Batches mix pre-rendered synthetic plates
(``synth.py``, cached under ``--workdir``) with augmented real crops from the *train*
split of the data folder: label-box / whole-plate crops and, in stage 2, the crops the
pipeline's locator cuts from the same files (``locate``'s character bands, re-cut with
jittered corners; only those the stage-1 model reads within ``--loc-max-edit`` edits of
the label). The real *val* split (``split_of``) is never trained on; the weights with the
best validation score on it (mean exact-match rate of its whole-plate crops, label-box
views and locator crops) go to ``--out`` (models/plate_g2.pth).
Both stages checkpoint to ``--workdir`` and a re-run resumes; every random draw derives
from ``(seed, step)``, so a resumed run takes the same batches as an uninterrupted one.
Without a data folder (or with ``--no-real``) it trains on synthetic plates only and
selects on held-out synthetic plates.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from parkinglot.lpr import lines, ocr, synth
from parkinglot.lpr.realdata import (RealItem, Sampler, clean, load_crop_folder, load_photo_tree,  # noqa: F401
                                     load_real, parse_weights, split_of)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_WORKDIR = REPO / ".train" / "plate_g2_v2"


# --------------------------------------------------------------------------- real data
# loading, the split by plate and the folder weights live in realdata; the names are kept here
# for the benchmarks and tests that import them from train
def cut_box(img: np.ndarray, box: Sequence[float], rng: np.random.Generator | None,
            angle: float = 0.0) -> np.ndarray:
    """Cut a (possibly jittered, rotated) box out of ``img``; no jitter if ``rng`` is None."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    if rng is not None:
        w *= rng.uniform(0.92, 1.2)
        h *= rng.uniform(0.8, 1.3)
        cx += rng.uniform(-0.06, 0.06) * w
        cy += rng.uniform(-0.08, 0.08) * h
    ow, oh = max(4, int(round(w))), max(4, int(round(h)))
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[0, 2] += ow / 2 - cx
    m[1, 2] += oh / 2 - cy
    return cv2.warpAffine(img, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def augment_real(item: RealItem, rng: np.random.Generator) -> np.ndarray:
    """A randomly jittered and degraded view of a real training crop (raw, not normalised)."""
    angle = float(np.clip(rng.normal(0, 2.0), -5, 5))
    if item.box is not None:
        img = cut_box(item.image, item.box, rng, angle)
    else:
        h, w = item.image.shape
        box = (w * rng.uniform(-0.04, 0.06), h * rng.uniform(-0.04, 0.08), w, h)
        img = cut_box(item.image, (box[0], box[1], w * rng.uniform(0.88, 1.0), h * rng.uniform(0.84, 1.0)),
                      None, angle)
    if rng.random() < 0.3:   # lower resolution
        s = rng.uniform(0.35, 0.8)
        small = cv2.resize(img, (max(4, int(img.shape[1] * s)), max(4, int(img.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
        img = small
    img = img.astype(np.float32)
    if rng.random() < 0.5:
        img = img * rng.uniform(0.6, 1.2) + rng.uniform(-30, 30)
    if rng.random() < 0.05:
        img = 255 - img
    img = synth._degrade(rng, img)
    return lines.as_one_line(img, cut=lines.find_cut(img, square=True)) if two_rows(item) else img


def two_rows(item: RealItem) -> bool:
    """Whether a real plate has two rows of characters: its crop or label box is square
    (``lines.is_square``), the rule the reader applies at inference."""
    if item.box is None:
        return lines.is_square(item.image)
    return item.box[2] < lines.SQUARE_ASPECT * item.box[3]


def val_views(item: RealItem) -> list[tuple[str, np.ndarray]]:
    """Deterministic validation views as the reader reads them (two-row plates side by side):
    the label box and two jittered boxes (photos), or the crop (``"crop-<folder>"``)."""
    if item.box is None:
        return [("crop-" + item.source.split("/", 1)[-1], lines.as_one_line(item.image))]
    rng = np.random.default_rng(int(hashlib.sha256(item.name.encode()).hexdigest()[:8], 16))
    views = [("box", lines.as_one_line(cut_box(item.image, item.box, None)))]
    for _ in range(2):
        views.append(("jitter", lines.as_one_line(cut_box(item.image, item.box, rng, float(rng.uniform(-3, 3))))))
    return views


# --------------------------------------------------------------------------- locator crops
# What the reader sees at inference: ``locate`` cuts a level *character band* (not the label
# box). Training and validation use the same cut from the same frames. In locate.py a one-line
# plate outline (``corners``) is its character band grown by 0.15 x character height along the
# row and 0.18 x character height across it; ``band_quad`` inverts that.
BAND_GROW_U, BAND_GROW_V = 0.15, 0.18
LOC_MIN_IOU = 0.3
LOC_MIN_HEIGHT = 0.7     # of the tallest matching band: the registration, not state names / slogans


@dataclass
class LocItem:
    name: str              # file name (split by ``split_of``)
    source: str            # "crops/<folder>" or "plates/<region>"
    text: str
    image: np.ndarray      # grayscale frame region around the band
    quad: np.ndarray       # (4, 2) band corners (tl, tr, br, bl) inside ``image``
    crop: np.ndarray       # the locator's own crop: exactly what inference reads
    edges: bool            # an edge-block candidate (its crop is trimmed to edge-dense rows)
    score: float           # locator score
    rank: int              # locator rank among the frame's candidates


def band_quad(cand) -> np.ndarray:
    """The character band (tl, tr, br, bl) of a one-line candidate, from its plate corners and
    crop aspect ratio; edge-block candidates are cut from their corners directly."""
    c = np.asarray(cand.corners, np.float64).reshape(4, 2)
    if getattr(cand, "source", "chars") == "edges":
        return c.astype(np.float32)
    tl, tr, br, bl = c
    wp = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2
    hp = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    r = cand.crop.shape[1] / max(1, cand.crop.shape[0])
    den = 2 * BAND_GROW_U - 2 * BAND_GROW_V * r
    h = (wp - r * hp) / den if abs(den) > 1e-6 else hp / 1.6
    h = float(np.clip(h, 0.0, hp / (1 + 2 * BAND_GROW_V)))
    du, dv = BAND_GROW_U * h / max(wp, 1e-6), BAND_GROW_V * h / max(hp, 1e-6)

    def at(s: float, t: float) -> np.ndarray:
        return (1 - t) * ((1 - s) * tl + s * tr) + t * ((1 - s) * bl + s * br)

    return np.array([at(du, dv), at(1 - du, dv), at(1 - du, 1 - dv), at(du, 1 - dv)], np.float32)


def warp_band(gray: np.ndarray, quad: np.ndarray, edges: bool, out_h: int = 64) -> np.ndarray:
    """Cut ``quad`` out of ``gray`` as locate.py does (level strip, ``out_h`` high)."""
    from parkinglot.lpr import locate

    crop = locate._warp(gray, np.asarray(quad, np.float32), out_h)
    return locate._trim_edges_crop(crop) if edges else crop


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _located(name: str, source: str, text: str, bgr: np.ndarray,
             box: tuple[float, float, float, float] | None, top_k: int = 5) -> list[LocItem]:
    """One-line locator candidates on the labelled plate (``box``; None = the whole image is
    the plate), tallest bands only, best locator score first."""
    from parkinglot.lpr.locate import locate

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    if box is None:
        box = (0.0, 0.0, float(gray.shape[1]), float(gray.shape[0]))
    hits = []
    for rank, cand in enumerate(locate(bgr, top_k=top_k)):
        if cand.lines != 1:
            continue   # two-line plates: no per-line labels
        ab = cand.axis_box()
        cx, cy = ab[0] + ab[2] / 2, ab[1] + ab[3] / 2
        inside = box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]
        if not (inside or _box_iou(ab, box) >= LOC_MIN_IOU):
            continue
        q = band_quad(cand)
        band_h = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
        hits.append((band_h, rank, cand, q))
    if not hits:
        return []
    tallest = max(h for h, *_ in hits)
    out = []
    for band_h, rank, cand, q in hits:
        if band_h < LOC_MIN_HEIGHT * tallest:
            continue
        m = 1.0 * band_h   # keep a margin of context for jittered re-cuts
        x0, y0 = (int(max(0, v - m)) for v in q.min(axis=0))
        x1 = int(min(gray.shape[1], q[:, 0].max() + m + 1))
        y1 = int(min(gray.shape[0], q[:, 1].max() + m + 1))
        out.append(LocItem(name, source, text, np.ascontiguousarray(gray[y0:y1, x0:x1]),
                           (q - np.array([x0, y0], np.float32)).astype(np.float32), cand.crop,
                           getattr(cand, "source", "chars") == "edges", float(cand.score), rank))
    return out


def _locate_file(args: tuple[str, str, str, str, tuple | None]) -> list[LocItem]:
    path, name, source, text, box = args
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None or (lines.is_square(img) if box is None else box[2] < lines.SQUARE_ASPECT * box[3]):
        return []   # two-row plates: a one-line candidate holds one row, not the label
    return _located(name, source, text, img, box)


def load_located(data: Path | None, workers: int = 1, quiet: bool = False) -> list[LocItem]:
    """Locator crops of every labelled file under ``data`` (photos and plate-crop folders)."""
    if data is None or not data.is_dir():
        return []
    jobs: list[tuple[str, str, str, str, tuple | None]] = []
    for folder in sorted(data.glob("plate-crops/*")):
        if (folder / "labels.csv").is_file():
            with open(folder / "labels.csv", newline="") as fh:
                for row in csv.DictReader(fh):
                    text = clean(row["plate"])
                    if text:
                        jobs.append((str(folder / row["file"]), row["file"], f"crops/{folder.name}", text, None))
    for txt in sorted((data / "plates").glob("*/*.txt")) if (data / "plates").is_dir() else []:
        parts = txt.read_text().strip().split("\t")
        text = clean(parts[5]) if len(parts) >= 6 else ""
        if text:
            jobs.append((str(txt.parent / parts[0]), parts[0], f"plates/{txt.parent.name}", text,
                         tuple(float(v) for v in parts[1:5])))
    from tqdm import tqdm

    out: list[LocItem] = []
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            for part in tqdm(pool.imap(_locate_file, jobs, chunksize=8), total=len(jobs), desc="locate",
                             unit="file", disable=quiet, mininterval=5.0):
                out += part
    else:
        for j in tqdm(jobs, desc="locate", unit="file", disable=quiet, mininterval=5.0):
            out += _locate_file(j)
    return out


def located_views(items: Sequence[LocItem], best_only: bool) -> list[LocItem]:
    """``best_only``: per file, the best-ranked matching candidate (what the pipeline reads first)."""
    if not best_only:
        return list(items)
    best: dict[tuple[str, str], LocItem] = {}
    for it in items:
        k = (it.source, it.name)
        if k not in best or it.rank < best[k].rank:
            best[k] = it
    return list(best.values())


def augment_located(item: LocItem, rng: np.random.Generator) -> np.ndarray:
    """A jittered re-cut of a locator crop (corners moved before the warp) plus degradations."""
    q = item.quad.astype(np.float64).copy()
    hb = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    u = (q[1] - q[0]) / max(np.linalg.norm(q[1] - q[0]), 1e-6)
    v = (q[3] - q[0]) / max(np.linalg.norm(q[3] - q[0]), 1e-6)
    # whole-band changes: wider/narrower ends, taller/shorter band, then per-corner noise
    left, right = rng.uniform(-0.12, 0.3, 2) * hb
    top, bottom = rng.uniform(-0.1, 0.15, 2) * hb
    q[0] += -left * u - top * v
    q[1] += right * u - top * v
    q[2] += right * u + bottom * v
    q[3] += -left * u + bottom * v
    q += rng.normal(0, 0.04 * hb, q.shape)
    img = warp_band(item.image, q.astype(np.float32), item.edges)
    if rng.random() < 0.3:   # lower resolution
        s = rng.uniform(0.3, 0.7)
        img = cv2.resize(img, (max(4, int(img.shape[1] * s)), max(4, int(img.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
    img = img.astype(np.float32)
    if rng.random() < 0.5:
        img = img * rng.uniform(0.6, 1.2) + rng.uniform(-30, 30)
    return synth._degrade(rng, img)


def character_spans(image: np.ndarray) -> list[tuple[int, int]]:
    """Column spans of the character-sized dark components of a normalised crop, left to
    right; components that overlap in x (a broken glyph) are one span."""
    h = image.shape[0]
    _, ink = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    spans: list[list[int]] = []
    for x, _y, w, ch, _area in sorted(stats[1:].tolist()):
        if not (0.4 * h <= ch <= 0.95 * h and w <= 0.9 * h):
            continue
        if spans and x < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], x + w)
        else:
            spans.append([x, x + w])
    return [(a, b) for a, b in spans]


def shuffle_characters(image: np.ndarray, text: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A normalised real crop with its characters moved: digits swap places with digits,
    letters with letters.

    The reader learns the few hundred real training crops by heart (it reads all of them
    and a fifth of the unseen ones wrong). The same glyphs, backgrounds and camera in a new
    order keep the real style and break that memory, and keeping each position's letter or
    digit kind keeps the layout context the reader uses (a round glyph in a digit slot is 0).
    Only crops whose character-sized components are exactly the label's characters are
    rearranged; the rest (touching or broken glyphs, frames, emblems) come back unchanged.
    Separators between a letter and a digit group stay where they are.
    """
    n = len(text)
    spans = character_spans(image)
    if n < 3 or len(spans) != n:
        return image, text
    gaps = [spans[k + 1][0] - spans[k][1] for k in range(n - 1)]
    widths = [b - a for a, b in spans]
    if min(gaps) < 1 or max(widths) > 1.6 * float(np.median(widths)):   # two glyphs as one
        return image, text
    pad = max(1, int(np.median(gaps)) // 2)
    starts, ends = [max(0, spans[0][0] - pad)], []
    for k in range(n - 1):
        if text[k].isdigit() != text[k + 1].isdigit():
            ends.append(spans[k][1] + min(pad, gaps[k] // 2))
            starts.append(spans[k + 1][0] - min(pad, gaps[k] // 2))
        else:
            mid = (spans[k][1] + spans[k + 1][0]) // 2
            ends.append(mid)
            starts.append(mid)
    ends.append(min(image.shape[1], spans[-1][1] + pad))
    order = np.arange(n)
    for kind in (str.isdigit, str.isalpha):
        slots = np.array([i for i, ch in enumerate(text) if kind(ch)], np.int64)
        if len(slots) > 1:
            order[slots] = rng.permutation(slots)
    if (order == np.arange(n)).all():
        return image, text
    parts = [image[:, :starts[0]]]
    for i, j in enumerate(order):
        parts.append(image[:, starts[j]:ends[j]])
        parts.append(image[:, ends[i]:starts[i + 1]] if i + 1 < n else image[:, ends[-1]:])
    return np.ascontiguousarray(np.concatenate(parts, axis=1)), "".join(text[j] for j in order)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


def clean_located(model, items: Sequence[LocItem], max_edit: int) -> list[LocItem]:
    """Training locator crops whose greedy reading by ``model`` is within ``max_edit`` edits of
    the label: the others are state names, slogans, stickers or fragments of the plate, not
    the registration the label names."""
    if not items:
        return []
    images = [ocr.normalize_crop(it.crop) for it in items]
    fs = backbone_features(model, images, quiet=True)
    fs.texts = [it.text for it in items]
    preds = greedy_from_features(model, fs)
    return [it for it, p in zip(items, preds) if edit_distance(p, it.text) <= max_edit]


# --------------------------------------------------------------------------- synthetic pool
def _synth_worker(args: tuple[int, int, int]) -> list[tuple[np.ndarray, str]]:
    seed, start, stop = args
    return [(ocr.normalize_crop(lines.as_one_line(s.image, cut=s.cut) if s.cut else s.image), s.text)
            for s in synth.generate_range(seed, start, stop)]


def synth_pool(n: int, seed: int, workdir: Path, workers: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` normalised synthetic plates, rendered once and cached in ``workdir``."""
    cache = workdir / f"synth2-{seed}-{n}.npz"   # synth2: two-row plates laid side by side
    if cache.is_file():
        z = np.load(cache)
        flat, widths, texts = z["flat"], z["widths"], [str(t) for t in z["texts"]]
        offs = np.concatenate(([0], np.cumsum(widths)))
        return [flat[:, offs[i]:offs[i + 1]] for i in range(len(widths))], texts
    chunks = [(seed, a, min(n, a + 250)) for a in range(0, n, 250)]
    out: list[tuple[np.ndarray, str]] = []
    from tqdm import tqdm

    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            for part in tqdm(pool.imap(_synth_worker, chunks), total=len(chunks), desc="render synthetic",
                             unit="chunk"):
                out += part
    else:
        for c in tqdm(chunks, desc="render synthetic", unit="chunk"):
            out += _synth_worker(c)
    images = [im for im, _ in out]
    texts = [t for _, t in out]
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, flat=np.hstack(images), widths=np.array([im.shape[1] for im in images]),
             texts=np.array(texts))
    os.replace(tmp, cache)
    return images, texts


# --------------------------------------------------------------------------- model
def init_from_english_g2():
    """english_g2 weights with the output layer cut down to blank + 0-9A-Z (same rows)."""
    import torch

    sd = ocr.load_state_dict(ocr.english_g2_path())
    chars = ocr.english_g2_characters()
    rows = [0] + [chars.index(c) + 1 for c in ocr.CHARSET]
    sd["Prediction.weight"] = sd["Prediction.weight"][rows].clone()
    sd["Prediction.bias"] = sd["Prediction.bias"][rows].clone()
    model = ocr.build_network()
    model.load_state_dict(sd)
    return model


def save_weights(model, path: Path) -> None:
    """State dict only, fp32, keys prefixed ``module.`` as easyocr's custom-network loader expects."""
    import torch

    sd = {"module." + k: v.detach().float().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(sd, tmp)
    os.replace(tmp, path)


def encode(texts: Sequence[str]):
    import torch

    flat = [ocr.CHARSET.index(c) + 1 for t in texts for c in t]
    return torch.tensor(flat, dtype=torch.long), torch.tensor([len(t) for t in texts], dtype=torch.long)


# english_g2's whole convolutional feature extractor stays frozen: its per-column output
# is computed once per training image and cached, so a step only runs the two BiLSTMs and
# the classifier (about 1/7 of the network's cost: the 2-core CPU budget allows no more).
FROZEN = "cnn"


class FeatureSet:
    """Cached frozen-backbone features (fp16, (256, T) each, T = W/4 - 1) with their labels."""

    def __init__(self, flat: np.ndarray, widths: np.ndarray, texts: list[str]) -> None:
        self.flat, self.widths, self.texts = flat, widths, texts
        self.offs = np.concatenate(([0], np.cumsum(widths)))

    def __len__(self) -> int:
        return len(self.texts)

    def get(self, i: int) -> np.ndarray:
        return self.flat[:, self.offs[i]:self.offs[i + 1]]

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, flat=self.flat, widths=self.widths, texts=np.array(self.texts))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "FeatureSet":
        z = np.load(path)
        return cls(z["flat"], z["widths"], [str(t) for t in z["texts"]])


def backbone_features(model, images: Sequence[np.ndarray], desc: str = "features",
                      quiet: bool = False) -> FeatureSet:
    """Frozen-part features of normalised images (batched by similar width)."""
    import torch
    from tqdm import tqdm

    model.eval()
    order = sorted(range(len(images)), key=lambda i: images[i].shape[1])
    feats: list[np.ndarray | None] = [None] * len(images)
    with torch.inference_mode():
        for a in tqdm(range(0, len(order), 32), desc=desc, unit="batch", disable=quiet, mininterval=5.0):
            idx = order[a:a + 32]
            wmax = max(images[i].shape[1] for i in idx)
            out = columns(model, ocr.batch_tensor([images[i] for i in idx])).numpy().astype(np.float16)
            for k, i in enumerate(idx):
                t = max(1, min(out.shape[2], images[i].shape[1] // 4 - 1))
                feats[i] = out[k, :, :t]
    widths = np.array([f.shape[1] for f in feats])
    return FeatureSet(np.concatenate(feats, axis=1), widths, [])


def columns(model, x):
    """The frozen part: CNN features averaged over height -> (B, 256, T)."""
    v = model.FeatureExtraction(x)
    return model.AdaptiveAvgPool(v.permute(0, 3, 1, 2)).squeeze(3).transpose(1, 2)


def head_logits(model, feats: Sequence[np.ndarray]):
    """The trainable top of the network on a batch of cached features -> (B, T, C) logits."""
    import torch

    tmax = max(f.shape[1] for f in feats)
    x = np.empty((len(feats), tmax, feats[0].shape[0]), np.float32)
    for i, f in enumerate(feats):
        x[i, :f.shape[1]] = f.T
        x[i, f.shape[1]:] = f[:, -1]
    return model.Prediction(model.SequenceModeling(torch.from_numpy(x)).contiguous())


def train_step(model, feats: list[np.ndarray], texts: list[str], chunk: int = 16) -> float:
    """CTC loss and backward over width-sorted chunks; returns the batch's mean loss."""
    import torch
    import torch.nn.functional as F

    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[1])
    total = 0.0
    for a in range(0, len(order), chunk):
        idx = order[a:a + chunk]
        logp = F.log_softmax(head_logits(model, [feats[i] for i in idx]), dim=2).permute(1, 0, 2)
        T = logp.shape[0]
        in_len = torch.tensor([min(T, feats[i].shape[1]) for i in idx], dtype=torch.long)
        targets, tgt_len = encode([texts[i] for i in idx])
        loss = F.ctc_loss(logp, targets, in_len, tgt_len, blank=0, zero_infinity=True) * (len(idx) / len(feats))
        loss.backward()
        total += float(loss.detach())
    return total


def dropped_logits(model, x, p: float):
    """The network's forward pass with dropout ``p`` on the CNN's column features before the
    BiLSTMs (training only; inference runs the unchanged network). english_g2 has no dropout,
    and on a few hundred real crops its LSTMs learn them by heart."""
    import torch.nn.functional as F

    v = F.dropout(columns(model, x).transpose(1, 2), p, training=True)
    return model.Prediction(model.SequenceModeling(v).contiguous())


def train_step_images(model, images: list[np.ndarray], texts: list[str], chunk: int = 12,
                      dropout: float = 0.0) -> float:
    """Whole-network CTC step over width-sorted chunks of normalised images."""
    import torch
    import torch.nn.functional as F

    order = sorted(range(len(images)), key=lambda i: images[i].shape[1])
    total = 0.0
    for a in range(0, len(order), chunk):
        idx = order[a:a + chunk]
        batch = ocr.batch_tensor([images[i] for i in idx])
        logits = dropped_logits(model, batch, dropout) if dropout > 0 else model(batch, None)
        logp = F.log_softmax(logits, dim=2).permute(1, 0, 2)
        T = logp.shape[0]
        in_len = torch.tensor([max(1, min(T, images[i].shape[1] // 4 - 1)) for i in idx], dtype=torch.long)
        targets, tgt_len = encode([texts[i] for i in idx])
        loss = F.ctc_loss(logp, targets, in_len, tgt_len, blank=0, zero_infinity=True) * (len(idx) / len(images))
        loss.backward()
        total += float(loss.detach())
    return total


def evaluate_images(model, images: list[np.ndarray], texts: list[str], kinds: list[str]) -> dict[str, float]:
    """Like ``evaluate`` but through the whole network."""
    import torch

    with torch.inference_mode():
        fs = backbone_features(model, images, quiet=True)
    fs.texts = texts
    return evaluate(model, fs, kinds)


def greedy_from_features(model, fs: FeatureSet, batch: int = 32) -> list[str]:
    import torch

    out = [""] * len(fs)
    order = sorted(range(len(fs)), key=lambda i: fs.widths[i])
    with torch.inference_mode():
        for a in range(0, len(order), batch):
            idx = order[a:a + batch]
            pred = head_logits(model, [fs.get(i) for i in idx]).argmax(dim=2).numpy()
            for i, row in zip(idx, pred):
                row = row[:fs.widths[i]]
                chars, last = [], 0
                for c in row:
                    if c != last and c != 0:
                        chars.append(ocr.CHARSET[c - 1])
                    last = c
                out[i] = "".join(chars)
    return out


# validation view kinds -> the sets whose exact-match rates are averaged into the selection score
VAL_SETS = {"crop": "crops", "box": "label", "jitter": "label", "loc": "located", "synth": "synth"}


def evaluate(model, fs: FeatureSet, kinds: list[str]) -> dict[str, float]:
    """Exact-match rate (greedy decoding) per view kind, per validation set, overall ("all"),
    and the selection ``score``: the mean of the sets' rates (the whole-plate crops of each
    crop folder, the label-box views of the photos, their locator crops), so a small set
    weighs as much as a large one."""
    preds = greedy_from_features(model, fs)
    res: dict[str, list[bool]] = {}
    for kind, text, p in zip(kinds, fs.texts, preds):
        for key in (kind, "set:" + VAL_SETS.get(kind, kind), "all"):
            res.setdefault(key, []).append(p == text)
    out = {k: round(float(np.mean(v)), 4) for k, v in res.items()}
    sets = [v for k, v in out.items() if k.startswith("set:")]
    out["score"] = round(float(np.mean(sets)), 4)
    return out


# --------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m parkinglot.lpr.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("PARKINGLOT_DATA", DEFAULT_DATA)),
                    help="folder with plate-crops/*/labels.csv and plates/<region>/ (default: ../shared/data)")
    ap.add_argument("--no-real", action="store_true", help="synthetic plates only")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="checkpoints, caches and history")
    ap.add_argument("--out", type=Path, default=ocr.TUNED_WEIGHTS, help="where the selected weights go")
    ap.add_argument("--head-steps", type=int, default=700,
                    help="stage 1: BiLSTMs + classifier on cached CNN features (fast)")
    ap.add_argument("--steps", type=int, default=1200, help="stage 2: the whole network, end to end")
    ap.add_argument("--full-lr", type=float, default=1e-4)
    ap.add_argument("--freeze-convs", type=int, default=2, help="stage 2: leading conv layers kept frozen")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--real-frac", type=float, default=0.6, help="share of real crops per batch")
    ap.add_argument("--loc-frac", type=float, default=0.5,
                    help="stage 2: share of the real crops that are locator crops (re-cut with jittered corners)")
    ap.add_argument("--loc-max-edit", type=int, default=3,
                    help="stage 2: keep a training locator crop only if the stage-1 model's reading is within "
                         "this edit distance of its label (drops state names, slogans, half plates)")
    ap.add_argument("--no-located", action="store_true", help="no locator crops (training or validation)")
    ap.add_argument("--shuffle-chars", type=float, default=0.0, metavar="SHARE",
                    help="stage 2: share of real crops whose digits and letters change places (see shuffle_characters)")
    ap.add_argument("--feature-dropout", type=float, default=0.0, metavar="P",
                    help="stage 2: dropout on the CNN column features before the BiLSTMs (training only)")
    ap.add_argument("--real-views", type=int, default=6, help="stage 1: augmented views cached per real training file")
    ap.add_argument("--folder-weight", action="append", default=[], metavar="SOURCE=W",
                    help="sampling weight of a real folder (e.g. crops/br=2; default: the square root of its "
                         "number of distinct plates, see realdata.Sampler); repeatable")
    ap.add_argument("--synth", type=int, default=10000, help="size of the pre-rendered synthetic pool")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the synthetic pool")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is ~10x faster than 2 for these small LSTM ops on a busy 2-core box")
    ap.add_argument("--init", type=Path, default=None,
                    help="skip stage 1 and run stage 2 from these weights (e.g. models/plate_g2.pth, to "
                         "continue an earlier round); the locator crops are filtered with this model")
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="validate and keep an exponential moving average of the weights (e.g. 0.995); 0 = off")
    ap.add_argument("--stop-at", type=int, default=0, metavar="STEP",
                    help="end each stage at this step, the learning-rate schedule staying that of its full "
                         "length (a round stopped early for time, reproduced exactly); 0 = run to the end")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    if not 0.0 <= args.feature_dropout < 1.0:
        ap.error("--feature-dropout must be in [0, 1)")
    return args


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return 1e-2 * peak + (peak - 1e-2 * peak) * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def _cached(path: Path, build) -> FeatureSet:
    if path.is_file():
        return FeatureSet.load(path)
    fs = build()
    fs.save(path)
    return fs


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_stage(name: str, model, trainable: list, steps: int, peak_lr: float, args: argparse.Namespace,
              step_fn, eval_fn) -> dict:
    """Shared loop: warm-up + cosine LR, checkpoints every ``--ckpt-every`` steps (resumable),
    validation every ``--eval-every`` steps, best-on-validation weights kept in ``<stage>/best.pth``.

    With ``--ema D`` the weights validated, selected and saved are an exponential moving
    average of the trained ones (Polyak averaging): on a few hundred real crops the raw
    weights wander from step to step, and their average generalises better at no cost
    at inference. ``eval_fn`` takes the network to evaluate."""
    import copy

    import torch
    from tqdm import tqdm

    wd = args.workdir / name
    wd.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.AdamW(trainable, lr=peak_lr, weight_decay=1e-4)
    ckpt_path, best_path, hist_path = wd / "checkpoint.pt", wd / "best.pth", wd / "history.jsonl"
    state = {"step": 0, "best": -1.0, "best_step": -1, "history": []}
    averaged = copy.deepcopy(model) if args.ema else None
    if args.fresh:
        for f in (ckpt_path, best_path, hist_path):
            f.unlink(missing_ok=True)
    elif ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if averaged is not None:
            averaged.load_state_dict(ck.get("ema") or ck["model"])
        state = ck["state"]
        _log(f"{name}: resumed at step {state['step']} (best {state['best']:.3f} at step {state['best_step']})")

    def checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                    "ema": averaged.state_dict() if averaged is not None else None}, tmp)
        os.replace(tmp, ckpt_path)

    loss_avg = float("nan")
    bar = tqdm(total=steps, initial=min(state["step"], steps), desc=name, unit="step", disable=args.quiet,
               mininterval=5.0)

    def validate(step: int) -> None:
        judged = averaged if averaged is not None else model
        metrics = eval_fn(judged)
        state["history"].append({"step": step, "loss": None if math.isnan(loss_avg) else round(loss_avg, 4), **metrics})
        if metrics["score"] > state["best"]:
            state["best"], state["best_step"] = metrics["score"], step
            save_weights(judged, best_path)
        bar.set_postfix(loss=f"{loss_avg:.3f}", val=f"{metrics['score']:.3f}",
                        best=f"{state['best']:.3f}@{state['best_step']}")
        with open(hist_path, "a") as fh:
            fh.write(json.dumps(state["history"][-1]) + "\n")

    if not state["history"]:
        validate(0)
    last = min(steps, args.stop_at) if args.stop_at else steps   # the schedule stays that of ``steps``
    while state["step"] < last:
        step = state["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak_lr, args.warmup)
        opt.zero_grad()
        torch.manual_seed(args.seed * 100003 + step)
        lv = step_fn(np.random.default_rng([args.seed, step]))
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
        opt.step()
        if averaged is not None:
            with torch.no_grad():
                for a, p in zip(averaged.state_dict().values(), model.state_dict().values()):
                    if a.dtype.is_floating_point:
                        a.mul_(args.ema).add_(p, alpha=1.0 - args.ema)
        loss_avg = lv if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * lv
        state["step"] = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.3f}", best=f"{state['best']:.3f}@{state['best_step']}", refresh=False)
        if state["step"] % args.eval_every == 0 or state["step"] == last:
            validate(state["step"])
        if state["step"] % args.ckpt_every == 0 or state["step"] == last:
            checkpoint()
    bar.close()
    return state


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    real = [] if args.no_real else load_real(args.data)
    train_real = [r for r in real if split_of(r.text) == "train"]
    val_real = [r for r in real if split_of(r.text) == "val"]
    located = [] if (args.no_real or args.no_located) else load_located(args.data, quiet=args.quiet)
    train_loc = [it for it in located if split_of(it.text) == "train"]
    # validation: per held-out photo, the best-ranked one-line locator candidate on the plate
    # (what the pipeline reads first); plate-crop folders are covered by their whole-plate crops
    val_loc = located_views([it for it in located if split_of(it.text) == "val" and not it.source.startswith("crops")],
                            best_only=True)
    fonts = synth.find_fonts()
    weights = parse_weights(args.folder_weight)
    real_sampler = Sampler(train_real, weights) if train_real else None
    _log(f"real data: {len(train_real)} train files, {len(val_real)} val files" + ("" if real else " - synthetic only"))
    if real_sampler:
        _log("folder weights: " + ", ".join(f"{k} {v:.3f}" for k, v in real_sampler.weights.items()))
    _log(f"locator crops: {len(train_loc)} train candidates, {len(val_loc)} val photos")
    _log(f"fonts: {len(fonts)}" + ("" if fonts else " (none installed: Pillow default + Hershey fallback)"))

    # --- data: synthetic pool; two-row plates are rendered with their rows side by side
    s_images, s_texts = synth_pool(args.synth, args.seed, args.workdir, args.workers)
    one_line = list(range(len(s_images)))
    if val_real:
        kinds, v_images, v_texts = [], [], []
        for r in val_real:
            for kind, im in val_views(r):
                kinds.append(kind)
                v_images.append(ocr.normalize_crop(im))
                v_texts.append(r.text)
        for it in val_loc:
            kinds.append("loc")
            v_images.append(ocr.normalize_crop(it.crop))
            v_texts.append(it.text)
        train_idx = one_line
    else:   # synthetic only: hold out the tail of the pool for selection
        k = max(16, len(one_line) // 20)
        v_images = [s_images[i] for i in one_line[-k:]]
        v_texts = [s_texts[i] for i in one_line[-k:]]
        kinds = ["synth"] * k
        train_idx = one_line[:-k]

    n_real = int(round(args.batch * args.real_frac)) if train_real else 0
    if args.init is None:
        # --- stage 1: frozen CNN, cached features, train BiLSTMs + classifier
        model = init_from_english_g2()
        tag = f"{args.seed}-{args.synth}-f{FROZEN}"
        synth_all = _cached(args.workdir / f"feat-synth-{tag}.npz",
                            lambda: backbone_features(model, s_images, "synthetic features", args.quiet))
        synth_fs = FeatureSet(np.concatenate([synth_all.get(i) for i in train_idx], axis=1),
                              synth_all.widths[train_idx], [s_texts[i] for i in train_idx])
        del synth_all
        val_fs = backbone_features(model, v_images, "validation features", args.quiet)
        val_fs.texts = v_texts
        real_fs = None
        if train_real:
            def build_real() -> FeatureSet:
                imgs, texts = [], []
                for i, r in enumerate(train_real):
                    rng = np.random.default_rng([args.seed, 7, i])
                    for v in range(args.real_views):
                        raw = val_views(r)[0][1] if v == 0 else augment_real(r, rng)
                        imgs.append(ocr.normalize_crop(raw))
                        texts.append(r.text)
                fs = backbone_features(model, imgs, "real features", args.quiet)
                fs.texts = texts
                return fs
            digest = hashlib.sha256("\n".join(f"{r.source}/{r.name}:{r.text}" for r in train_real).encode()).hexdigest()[:10]
            real_fs = _cached(args.workdir / f"feat-real-{tag}-v{args.real_views}-{digest}.npz", build_real)
        _log(f"cached features: {len(synth_fs)} synthetic, {len(real_fs) if real_fs else 0} real views, "
             f"{len(val_fs)} validation views")

        for p in model.parameters():
            p.requires_grad_(False)
        head_params = [*model.SequenceModeling.parameters(), *model.Prediction.parameters()]
        for p in head_params:
            p.requires_grad_(True)

        def head_step(rng: np.random.Generator) -> float:
            idx_s = rng.integers(0, len(synth_fs), args.batch - n_real)
            feats = [synth_fs.get(i) for i in idx_s]
            texts = [synth_fs.texts[i] for i in idx_s]
            if n_real:   # a file by folder weight, then one of its cached views
                idx_r = [f * args.real_views + int(rng.integers(args.real_views))
                         for f in real_sampler.draw(rng, n_real)]
                feats += [real_fs.get(i) for i in idx_r]
                texts += [real_fs.texts[i] for i in idx_r]
            return train_step(model, feats, texts)

        model.eval()   # no dropout anywhere; BatchNorm keeps english_g2 statistics
        s1 = run_stage("head", model, head_params, args.head_steps, args.lr, args, head_step,
                       lambda net: evaluate(net, val_fs, kinds))
        del synth_fs, real_fs

    else:   # a continued round: stage 1 is the earlier round's business
        s1 = {"best": -1.0, "best_step": -1, "history": []}

    # --- stage 2: the whole network (bar the first conv layers) from the best stage-1 weights
    model = ocr.build_network()
    model.load_state_dict(ocr.load_state_dict(args.init or args.workdir / "head" / "best.pth"))
    model.eval()
    convs = [m for m in model.FeatureExtraction.ConvNet if isinstance(m, torch.nn.Conv2d)]
    for conv in convs[:args.freeze_convs]:
        conv.requires_grad_(False)
    full_params = [p for p in model.parameters() if p.requires_grad]
    train_loc = clean_located(model, train_loc, args.loc_max_edit)
    _log(f"locator crops kept for training: {len(train_loc)} "
         f"({len({(it.source, it.name) for it in train_loc})} files; stage-1 reading within "
         f"{args.loc_max_edit} edits of the label)")
    n_loc = int(round(n_real * args.loc_frac)) if (n_real and train_loc) else 0
    loc_sampler = Sampler(train_loc, weights) if n_loc else None
    s_train = [s_images[i] for i in train_idx]
    s_train_texts = [s_texts[i] for i in train_idx]
    del s_images

    def full_step(rng: np.random.Generator) -> float:
        images, texts = [], []
        for i in rng.integers(0, len(s_train), args.batch - n_real):
            images.append(s_train[i])
            texts.append(s_train_texts[i])
        for i in real_sampler.draw(rng, n_real - n_loc) if n_real - n_loc else []:
            images.append(ocr.normalize_crop(augment_real(train_real[i], rng)))
            texts.append(train_real[i].text)
        for i in loc_sampler.draw(rng, n_loc) if n_loc else []:
            it = train_loc[i]
            raw = it.crop if rng.random() < 0.15 else augment_located(it, rng)
            images.append(ocr.normalize_crop(raw))
            texts.append(it.text)
        # the guard keeps the random stream, and so the batches, of runs without the flag as they were
        for i in range(args.batch - n_real, args.batch) if args.shuffle_chars > 0 else ():
            if rng.random() < args.shuffle_chars:
                images[i], texts[i] = shuffle_characters(images[i], texts[i], rng)
        return train_step_images(model, images, texts, dropout=args.feature_dropout)

    s2 = run_stage("full", model, full_params, args.steps, args.full_lr, args, full_step,
                   lambda net: evaluate_images(net, v_images, v_texts, kinds))

    # --- selection on the validation split only
    best_stage = "full" if s2["best"] >= s1["best"] else "head"
    chosen = s2 if best_stage == "full" else s1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.copyfile(args.workdir / best_stage / "best.pth", args.out)
    report = {
        "seed": args.seed, "batch": args.batch, "ema": args.ema, "real_frac": args.real_frac,
        "init": str(args.init) if args.init else None,
        "stage1": {"steps": 0 if args.init else args.head_steps, "lr": args.lr, "trained": "BiLSTMs + classifier (CNN frozen)",
                   "best_step": s1["best_step"], "best_val": s1["best"], "history": s1["history"]},
        "stage2": {"steps": args.steps, "lr": args.full_lr, "frozen_convs": args.freeze_convs,
                   "best_step": s2["best_step"], "best_val": s2["best"], "history": s2["history"]},
        "selected": {"stage": best_stage, "step": chosen["best_step"], "val_score_greedy": chosen["best"],
                     "val_metrics": next((h for h in chosen["history"] if h["step"] == chosen["best_step"]), {})},
        "stop_at": args.stop_at, "loc_frac": args.loc_frac, "shuffle_chars": args.shuffle_chars, "feature_dropout": args.feature_dropout,
        "loc_max_edit": args.loc_max_edit,
        "folder_weights": real_sampler.weights if real_sampler else {},
        "located_folder_weights": loc_sampler.weights if loc_sampler else {},
        "train_files_by_folder": {k: sum(r.source == k for r in train_real) for k in sorted({r.source for r in train_real})},
        "val_files_by_folder": {k: sum(r.source == k for r in val_real) for k in sorted({r.source for r in val_real})},
        "located_train_crops": len(train_loc), "located_val_photos": len(val_loc),
        "synthetic_pool": len(train_idx), "real_views_stage1": args.real_views, "fonts": len(fonts),
        "train_files": sorted(f"{r.source}/{r.name}" for r in train_real),
        "val_files": sorted(f"{r.source}/{r.name}" for r in val_real),
        "minutes_last_run": round((time.time() - t0) / 60, 1),
    }
    (args.workdir / "report.json").write_text(json.dumps(report, indent=1))
    _log(f"selected {best_stage} step {chosen['best_step']} (val score {chosen['best']:.3f}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
