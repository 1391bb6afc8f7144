"""Reading benchmark folders in the OpenALPR layout: ``<region>/<name>.jpg`` next to ``<name>.txt``
holding ``<image>\\t<x>\\t<y>\\t<w>\\t<h>\\t<PLATE>``. Works on any such folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Labelled:
    path: Path
    region: str
    box: tuple[int, int, int, int]  # x, y, w, h
    plate: str


def parse_label(txt: Path) -> Optional[tuple[str, tuple[int, int, int, int], str]]:
    line = txt.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    if not line:
        return None
    parts = line[0].split("\t")
    if len(parts) < 6:
        parts = line[0].split()
    if len(parts) < 6:
        return None
    name, x, y, w, h = parts[0], *map(int, parts[1:5])
    plate = "".join(parts[5:]).upper()
    return name, (x, y, w, h), plate


def iter_dataset(root: Path, region: Optional[str] = None) -> Iterator[Labelled]:
    """Labelled images under ``root``: subfolders are regions unless ``region`` is forced."""
    root = Path(root)
    folders = [root] if region and not any(p.is_dir() for p in root.iterdir()) else sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        folders = [root]
    for folder in folders:
        reg = region or folder.name
        if region and folder != root and folder.name != region and any(p.is_dir() for p in root.iterdir()):
            continue
        for txt in sorted(folder.glob("*.txt")):
            parsed = parse_label(txt)
            if parsed is None:
                continue
            name, box, plate = parsed
            img = folder / name
            if not img.exists():
                candidates = [txt.with_suffix(ext) for ext in IMAGE_EXTS if txt.with_suffix(ext).exists()]
                if not candidates:
                    continue
                img = candidates[0]
            yield Labelled(img, reg, box, plate)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def corners_to_box(corners) -> tuple[float, float, float, float]:
    xs = [p[0] for p in corners]
    ys = [p[1] for p in corners]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def lenient(text: str) -> str:
    """O=0 and I=1 counted as equal (the issue's lenient accuracy)."""
    return text.replace("O", "0").replace("I", "1")


def overall_and_by_region(rows: dict, stats) -> dict:
    """``{"overall": stats(all rows), "by_region": {region: stats(its rows)}}`` for rows grouped by region."""
    everything = [r for rs in rows.values() for r in rs]
    return {"overall": stats(everything), "by_region": {reg: stats(rs) for reg, rs in sorted(rows.items())}}
