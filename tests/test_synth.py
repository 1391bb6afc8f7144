"""Synthetic plate generator: valid images and labels, with or without installed fonts."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from parkinglot.lpr import synth

from .conftest import missing_prerequisite

LABEL = re.compile(r"[A-Z0-9]{1,10}")
FALLBACK = synth.font_choices([])   # Pillow default + Hershey: no installed font needed


@pytest.mark.parametrize("region", synth.REGIONS)
def test_random_texts_follow_region_patterns(region: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        layout, label, reg = synth.random_plate_text(rng, region)
        assert reg == region
        assert LABEL.fullmatch(label)
        assert label == "".join(c for c in layout if c.isalnum())
        assert 2 <= len(label) <= 8


def test_br_texts_are_old_or_mercosur() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        _, label, _ = synth.random_plate_text(rng, "br")
        assert re.fullmatch(r"[A-Z]{3}[0-9][A-Z0-9][0-9]{2}", label)


def test_us_serials_leave_out_i_o_q_and_vanity_layouts_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    def letters(region: str, pattern: str) -> set[str]:
        monkeypatch.setitem(synth.PATTERNS, region, (pattern,))
        rng = np.random.default_rng(2)
        return {c for _ in range(1500) for c in synth.random_plate_text(rng, region)[1] if c.isalpha()}

    serial = letters("us", "LLL 9999")
    assert len(serial) == 23 and not serial & set("IOQ")
    assert set("IOQ") <= letters("us", "AAAAAAA")
    assert set("IOQ") <= letters("eu", "LL-999-LL")


def test_fallback_fonts_exist_without_installed_fonts() -> None:
    assert FALLBACK
    assert {kind for kind, _ in FALLBACK} >= {"hershey"}


@pytest.mark.parametrize("seed", range(12))
def test_render_gives_grayscale_crop_and_label(seed: int) -> None:
    s = synth.render_plate(np.random.default_rng(seed), None, FALLBACK)
    assert s.image.dtype == np.uint8 and s.image.ndim == 2
    assert s.image.shape[0] >= 6 and s.image.shape[1] >= 8
    assert s.image.std() > 3          # something is drawn
    assert LABEL.fullmatch(s.text)
    assert s.region in synth.REGIONS


def test_generation_is_deterministic_per_seed_and_index() -> None:
    a = synth.generate(3, seed=7, fonts=FALLBACK)
    b = synth.generate(3, seed=7, fonts=FALLBACK)
    assert [x.text for x in a] == [x.text for x in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    c = synth.generate_range(7, 1, 3, fonts=[])
    assert [x.text for x in c] == [x.text for x in a[1:]]


def test_installed_fonts_render_too() -> None:
    fonts = synth.font_choices()     # installed fonts, or the fallback on a bare machine
    s = synth.render_plate(np.random.default_rng(3), "eu", fonts)
    assert LABEL.fullmatch(s.text) and s.image.dtype == np.uint8


def test_every_font_family_is_equally_likely() -> None:
    # one family ships thirty files, the other two: each should still get half the plates
    fonts = [("pil", f"/fonts/big/{i}.ttf") for i in range(30)] + [("pil", f"/fonts/small/{i}.ttf") for i in range(2)]
    rng = np.random.default_rng(0)
    picks = [synth._pick_font(rng, fonts)[1] for _ in range(4000)]
    small = sum(p.startswith("/fonts/small/") for p in picks) / len(picks)
    assert 0.45 < small < 0.55
    assert {p for p in picks if p.startswith("/fonts/small/")} == {"/fonts/small/0.ttf", "/fonts/small/1.ttf"}


DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


def _dejavu(*names: str) -> None:
    """The DejaVu faces these tests measure (Debian's fonts-dejavu-core; ``dev.py test`` installs it)."""
    missing = [n for n in names if not (DEJAVU / n).is_file()]
    if missing:
        missing_prerequisite(f"{', '.join(missing)} not in {DEJAVU}: install Debian's fonts-dejavu-core "
                             f"(python3 dev.py test does)", needed_for="the font tests")


def test_fonts_with_a_slashed_or_dotted_zero_are_not_used() -> None:
    _dejavu("DejaVuSansMono.ttf", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
    # DejaVu Sans Mono marks its zero inside the oval, DejaVu Sans does not; plates never do
    assert not synth._plain_zero(str(DEJAVU / "DejaVuSansMono.ttf"))
    assert synth._plain_zero(str(DEJAVU / "DejaVuSans.ttf"))
    assert synth._plain_zero(str(DEJAVU / "DejaVuSans-Bold.ttf"))
    assert not synth._plain_zero("/nonexistent/font.ttf")


def test_font_names_decide_which_faces_are_plate_like(tmp_path, monkeypatch) -> None:
    _dejavu("DejaVuSans.ttf")
    # the name filter keeps upright plain faces (a signage "gothic" included) and drops italic,
    # wide and the geometric URW Gothic; one file of the same name counts once
    names = ["routed-gothic.ttf", "routed-gothic-narrow.ttf", "routed-gothic-italic.ttf",
             "routed-gothic-wide.ttf", "URWGothic-Book.ttf", "Plain-Regular.ttf"]
    for name in names:
        (tmp_path / name).write_bytes((DEJAVU / "DejaVuSans.ttf").read_bytes())
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "Plain-Regular.ttf").write_bytes((DEJAVU / "DejaVuSans.ttf").read_bytes())
    monkeypatch.setattr(synth, "_FONT_DIRS", (str(tmp_path),))
    synth.find_fonts.cache_clear()
    try:
        kept = sorted(os.path.relpath(p, tmp_path) for p in synth.find_fonts())
    finally:
        synth.find_fonts.cache_clear()
    assert kept == ["Plain-Regular.ttf", "routed-gothic-narrow.ttf", "routed-gothic.ttf"]
