"""Real data: the split by plate text (never by file) and the sampling weights per folder."""
from __future__ import annotations

import csv
import math
import string
from pathlib import Path

import cv2
import numpy as np
import pytest

from parkinglot.lpr import realdata


def _random_plates(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pool = string.ascii_uppercase + string.digits
    return ["".join(rng.choice(list(pool), 7)) for _ in range(n)]


def test_split_is_by_normalised_plate_text():
    plates = _random_plates(900)
    sides = [realdata.split_of(p) for p in plates]
    assert set(sides) == {"train", "val"} and 0.28 < sides.count("val") / len(plates) < 0.39
    for p, side in zip(plates[:50], sides):
        assert realdata.split_of(p.lower()) == side
        assert realdata.split_of(f"{p[:3]}-{p[3:]}") == side
    # the sources write some plates with O or 0, I or 1: both spellings fall on one side
    assert realdata.split_of("AB0C1D") == realdata.split_of("ABOCID")
    with pytest.raises(ValueError):
        realdata.split_of(" - ")


def _crop_folder(root: Path, name: str, rows: list[tuple[str, str]]) -> None:
    folder = root / "plate-crops" / name
    folder.mkdir(parents=True)
    with open(folder / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "state", "plate"])
        for file, plate in rows:
            cv2.imwrite(str(folder / file), np.full((40, 90), 200, np.uint8))
            w.writerow([file, "", plate])


def test_every_file_of_a_plate_lands_on_one_side_in_every_folder(tmp_path: Path):
    plates = _random_plates(40, seed=3)
    _crop_folder(tmp_path, "aa", [(f"a{i}.png", p) for i, p in enumerate(plates)])
    _crop_folder(tmp_path, "bb", [(f"b{i}-{k}.png", p) for i, p in enumerate(plates[:20]) for k in range(3)])
    photos = tmp_path / "plates" / "xx"
    photos.mkdir(parents=True)
    for i, p in enumerate(plates[:10]):
        cv2.imwrite(str(photos / f"car{i}.jpg"), np.full((120, 200, 3), 128, np.uint8))
        (photos / f"car{i}.txt").write_text(f"car{i}.jpg\t50\t40\t80\t30\t{p}\n")
    items = realdata.load_real(tmp_path)
    assert len(items) == 40 + 60 + 10
    assert {it.source for it in items} == {"crops/aa", "crops/bb", "plates/xx"}
    sides: dict[str, set[str]] = {}
    for it in items:
        sides.setdefault(it.text, set()).add(it.split)
    assert all(len(s) == 1 for s in sides.values()) and len(sides) == 40


class _Item:
    def __init__(self, source: str, text: str) -> None:
        self.source, self.text = source, text


def test_folders_weigh_by_the_root_of_their_distinct_plates_and_plates_count_once():
    # folder "big": 100 plates, the first one in 50 frames; folder "small": 4 plates
    items = [_Item("big", f"P{i:03d}") for i in range(100)] + [_Item("big", "P000")] * 49
    items += [_Item("small", f"S{i}") for i in range(4)]
    w = realdata.folder_weights(items)
    assert math.isclose(w["big"] / w["small"], math.sqrt(100) / math.sqrt(4))
    sampler = realdata.Sampler(items)
    draws = sampler.draw(np.random.default_rng(0), 20000)
    small = sum(items[i].source == "small" for i in draws) / len(draws)
    assert abs(small - 2 / 12) < 0.02
    repeated = sum(items[i].text == "P000" for i in draws) / len(draws)
    assert abs(repeated - (10 / 12) / 100) < 0.004      # one plate among 100, however many frames
    over = realdata.Sampler(items, {"small": 0.0})
    assert all(items[i].source == "big" for i in over.draw(np.random.default_rng(1), 500))


def test_weight_overrides_are_parsed_or_refused():
    assert realdata.parse_weights(["crops/br=2", "plates/us=0.5"]) == {"crops/br": 2.0, "plates/us": 0.5}
    for bad in (["crops/br"], ["=2"], ["crops/br=-1"], ["crops/br=x"]):
        with pytest.raises(ValueError):
            realdata.parse_weights(bad)


def test_files_of_the_old_split_by_name_are_known():
    """The rounds before the split by plate trained on about two thirds of plate-crops/us and
    plates/*, chosen by file name; the new folders were never used then."""
    names = [f"img{i:04d}.jpg" for i in range(300)]
    seen = [realdata.trained_before_plate_split("plates/us", n) for n in names]
    assert 0.58 < sum(seen) / len(seen) < 0.75
    assert realdata.trained_before_plate_split("crops/us", "/x/y/img0001.jpg") == seen[1]
    assert not any(realdata.trained_before_plate_split(src, n) for src in ("crops/us2", "crops/br", "crops/eu-2line")
                   for n in names)
