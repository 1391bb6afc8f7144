"""The labelled real plates of a data folder (``../shared/data``): loading, the train/val
split, and sampling weights per folder.

**Split by plate, never by file.** Several folders hold the same vehicle more than once
(the Brazilian camera crops, neighbouring frames among the photos), and the same plate may
appear in two folders. A split by file name would put one frame in training and its twin in
validation and flatter every figure, so the split is a salted hash of the plate's
normalised text: every file of a plate, in every folder, falls on the same side. The
normalisation folds O onto 0 and I onto 1, because the sources write some plates both ways.

**Weights per folder.** The folders differ in size by an order of magnitude, and the largest
(1,144 Brazilian crops of 530 plates) is the easiest and the most repetitive. A real crop in
a training batch is drawn folder first, with a folder's weight the square root of its number
of distinct plates, then a plate uniformly within the folder, then one of its files: small
folders are not drowned, and a plate seen in five frames counts once.
"""
from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from parkinglot.plates import ALPHABET

SPLIT_SALT = "parkinglot-plate-split-v2"
VAL_MODULO = 3          # one plate in three (by salted hash of its text) is held out


def clean(text: str) -> str:
    """A label as the reader spells it: upper case, A-Z0-9 only."""
    return "".join(ch for ch in text.upper() if ch in ALPHABET)


def plate_key(text: str) -> str:
    """The text that decides a plate's side of the split: cleaned, O written 0 and I written 1."""
    return clean(text).replace("O", "0").replace("I", "1")


def split_of(plate: str) -> str:
    """``"val"`` or ``"train"`` for a labelled plate, from a salted hash of its normalised text
    only: every file of one plate, in any folder, is on the same side."""
    key = plate_key(plate)
    if not key:
        raise ValueError(f"no plate text to split on: {plate!r}")
    h = int(hashlib.sha256((SPLIT_SALT + key).encode()).hexdigest()[:8], 16)
    return "val" if h % VAL_MODULO == 0 else "train"


@dataclass
class RealItem:
    name: str            # file name
    source: str          # "crops/<folder>" or "plates/<region>"
    text: str
    image: np.ndarray    # grayscale; for photos, a region around the box
    box: tuple[float, float, float, float] | None   # x, y, w, h inside image (photos)

    @property
    def split(self) -> str:
        return split_of(self.text)


def load_crop_folder(folder: Path) -> list[RealItem]:
    """A ``labels.csv`` (file,state,plate) folder of whole-plate crops."""
    items = []
    with open(folder / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            img = cv2.imread(str(folder / row["file"]), cv2.IMREAD_GRAYSCALE)
            text = clean(row["plate"])
            if img is not None and text:
                items.append(RealItem(row["file"], f"crops/{folder.name}", text, img, None))
    return items


def load_photo_tree(root: Path) -> list[RealItem]:
    """OpenALPR benchmark layout ``<region>/<name>.txt`` + image; keeps a margin around the box."""
    items = []
    for txt in sorted(root.glob("*/*.txt")):
        parts = txt.read_text().strip().split("\t")
        if len(parts) < 6:
            continue
        img = cv2.imread(str(txt.parent / parts[0]), cv2.IMREAD_GRAYSCALE)
        text = clean(parts[5])
        if img is None or not text:
            continue
        x, y, w, h = (float(v) for v in parts[1:5])
        mx, my = 0.5 * w, 0.8 * h
        x0, y0 = int(max(0, x - mx)), int(max(0, y - my))
        x1, y1 = int(min(img.shape[1], x + w + mx)), int(min(img.shape[0], y + h + my))
        items.append(RealItem(parts[0], f"plates/{txt.parent.name}", text,
                              np.ascontiguousarray(img[y0:y1, x0:x1]), (x - x0, y - y0, w, h)))
    return items


def load_real(data: Path | None) -> list[RealItem]:
    """Every labelled real plate under ``data``: ``plate-crops/*/labels.csv`` and ``plates/<region>/``."""
    if data is None or not data.is_dir():
        return []
    items: list[RealItem] = []
    for folder in sorted(data.glob("plate-crops/*")):
        if (folder / "labels.csv").is_file():
            items += load_crop_folder(folder)
    if (data / "plates").is_dir():
        items += load_photo_tree(data / "plates")
    return items


def folder_weights(items: Sequence, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per source folder, the square root of its number of distinct plates (or an override),
    normalised to sum to one. ``items`` need ``source`` and ``text``."""
    plates: dict[str, set[str]] = {}
    for it in items:
        plates.setdefault(it.source, set()).add(plate_key(it.text))
    raw = {src: float((overrides or {}).get(src, math.sqrt(len(p)))) for src, p in plates.items()}
    total = sum(raw.values())
    return {src: w / total for src, w in sorted(raw.items()) if total > 0}


class Sampler:
    """Draws item indices folder first (by weight), then plate, then file (both uniformly)."""

    def __init__(self, items: Sequence, overrides: Mapping[str, float] | None = None) -> None:
        self.weights = folder_weights(items, overrides)
        self.sources = list(self.weights)
        self.p = np.array([self.weights[s] for s in self.sources])
        groups: dict[str, dict[str, list[int]]] = {s: {} for s in self.sources}
        for i, it in enumerate(items):
            groups[it.source].setdefault(plate_key(it.text), []).append(i)
        self.plates = [list(groups[s].values()) for s in self.sources]

    def __len__(self) -> int:
        return sum(len(g) for g in self.plates)

    def draw(self, rng: np.random.Generator, n: int) -> list[int]:
        out = []
        for _ in range(n):
            plates = self.plates[int(rng.choice(len(self.sources), p=self.p))]
            files = plates[int(rng.integers(len(plates)))]
            out.append(files[int(rng.integers(len(files)))])
        return out


def parse_weights(specs: Sequence[str]) -> dict[str, float]:
    """``["crops/br=2", ...]`` as a mapping (ValueError on a malformed entry)."""
    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name:
            raise ValueError(f"expected SOURCE=WEIGHT, got {spec!r}")
        out[name] = float(value)
        if out[name] < 0:
            raise ValueError(f"weight of {name} must be >= 0")
    return out


# Rounds before the split by plate (iterations 1-4 of plate_g2, up to 2026-12-01) split by file
# name and trained on the "train" files of plate-crops/us and plates/<region>. A round that
# continues from those weights has seen them, whatever side of today's split they fall on.
LEGACY_SALT = "parkinglot-plate-split-v1"
LEGACY_SOURCES = ("crops/us", "plates/us", "plates/eu", "plates/br")


def trained_before_plate_split(source: str, name: str) -> bool:
    """Whether the rounds of the old split by file name may have trained on this file (its
    folder was used then and its file name fell on the train side). Conservative: a file
    added to such a folder later is counted too when its name hashes to train."""
    if source not in LEGACY_SOURCES:
        return False
    h = int(hashlib.sha256((LEGACY_SALT + Path(name).name).encode()).hexdigest()[:8], 16)
    return h % 3 != 0
