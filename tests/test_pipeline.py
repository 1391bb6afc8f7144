"""The pipeline with fake stages: voting, two-line plates, no-plate results, typed input errors."""
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from parkinglot.lpr import images
from parkinglot.lpr.pipeline import Pipeline


@dataclass(frozen=True)
class Cand:
    corners: np.ndarray
    score: float
    crop: np.ndarray
    lines: int = 1
    line_crops: tuple = ()


@dataclass(frozen=True)
class TC:
    text: str
    confidence: float
    char_confidences: tuple = ()


@dataclass(frozen=True)
class Rec:
    candidates: tuple


CORNERS = np.array([[10, 10], [110, 10], [110, 40], [10, 40]], np.float32)


class FakeReader:
    """Reads a crop as the text painted into its first pixel row (test convention)."""

    name = "fake"

    def __init__(self, table):
        self.table = table
        self.batches = []

    def read(self, crops):
        self.batches.append(len(crops))
        return [self.table[int(c[0, 0])] for c in crops]


def crop(code: int) -> np.ndarray:
    c = np.full((64, 200), 255, np.uint8)
    c[0, 0] = code
    return c


def frame(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (72, 128, 3), dtype=np.uint8)


def test_burst_votes_per_character_and_batches_once():
    table = {1: Rec((TC("ABC1234", 0.9, (0.9,) * 7),)), 2: Rec((TC("A8C1234", 0.85, (0.9, 0.3) + (0.9,) * 5),)),
             3: Rec((TC("ABC1Z34", 0.8, (0.9,) * 4 + (0.2, 0.9, 0.9)),))}
    seq = iter([1, 2, 3])
    reader = FakeReader(table)
    pipe = Pipeline(locator=lambda img, top_k: [Cand(CORNERS, 1.0, crop(next(seq)))], reader=reader)
    r = pipe.recognize([frame(0), frame(1), frame(2)], "br")
    assert r.text == "ABC1234" and reader.batches == [3]
    assert r.box is not None and r.timings["total_ms"] > 0 and r.alternatives


def test_two_line_plates_are_read_as_one_crop_with_their_rows_side_by_side():
    """The reader gets one crop per two-line candidate: the top row, a gap, then the bottom row."""
    seen = []

    class Recording(FakeReader):
        def read(self, crops):
            seen.extend(crops)
            return [Rec((TC("ABC1234", 0.9, (0.9,) * 7),)) for _ in crops]

    top, bottom = np.full((64, 120), 40, np.uint8), np.full((64, 160), 200, np.uint8)
    two = Cand(CORNERS, 1.0, crop(7), lines=2, line_crops=(top, bottom))
    r = Pipeline(locator=lambda img, top_k: [two], reader=Recording({})).recognize(frame(), "br")
    assert r.text == "ABC1234" and len(seen) == 1
    joined = seen[0]
    assert joined.shape == (64, 120 + 32 + 160)
    assert (joined[:, :120] == 40).all() and (joined[:, -160:] == 200).all()


def test_no_plate_is_a_result_with_a_reason():
    r = Pipeline(locator=lambda img, top_k: [], reader=FakeReader({})).recognize(frame(), "us")
    assert r.text == "" and r.reason == "no_plate_found" and not r.found
    r = Pipeline(locator=lambda img, top_k: [Cand(CORNERS, 1.0, crop(9))],
                 reader=FakeReader({9: Rec((TC("", 0.0),))})).recognize(frame(), "us")
    assert r.reason == "unreadable_plate"


def test_bad_input_raises_typed_errors():
    pipe = Pipeline(locator=lambda img, top_k: [], reader=FakeReader({}))
    with pytest.raises(images.EmptyImage):
        pipe.recognize(b"")
    with pytest.raises(images.NotAnImage):
        pipe.recognize(b"hello world, not an image")
    with pytest.raises(images.CorruptImage):
        pipe.recognize(cv2.imencode(".jpg", frame())[1].tobytes()[:60])
    with pytest.raises(images.ImageError, match="at most"):
        pipe.recognize([frame()] * 9)
    with pytest.raises(ValueError, match="unknown region"):
        pipe.recognize(frame(), "mars")
    with pytest.raises(images.NotAnImage):
        pipe.recognize(np.zeros((10, 10), np.float32))


def test_accepts_jpeg_png_and_arrays():
    pipe = Pipeline(locator=lambda img, top_k: [], reader=FakeReader({}))
    f = frame()
    for data in (cv2.imencode(".jpg", f)[1].tobytes(), cv2.imencode(".png", f)[1].tobytes(), f, f[:, :, 0]):
        assert pipe.recognize(data).reason == "no_plate_found"


def test_staged_reading_stops_at_a_convincing_candidate():
    table = {1: Rec((TC("ABC1234", 0.95, (0.95,) * 7),)), 2: Rec((TC("XYZ9876", 0.9, (0.9,) * 7),)),
             3: Rec((TC("Q", 0.1, (0.1,)),))}
    reader = FakeReader(table)
    cands = [Cand(CORNERS, 1.0, crop(1)), Cand(CORNERS, 0.5, crop(2)), Cand(CORNERS, 0.4, crop(3))]
    r = Pipeline(locator=lambda img, top_k: cands, reader=reader).recognize(frame(), "br")
    assert r.text == "ABC1234" and reader.batches == [1]

    reader = FakeReader(table)
    unsure = [Cand(CORNERS, 1.0, crop(3)), Cand(CORNERS, 0.5, crop(2)), Cand(CORNERS, 0.4, crop(1))]
    r = Pipeline(locator=lambda img, top_k: unsure, reader=reader).recognize(frame(), "br")
    assert reader.batches == [1, 2]  # the rest is read, in one batch, when the best is unconvincing
    assert r.text == "ABC1234"


def _one_reading(text: str, conf: float = 0.9, char_confs: tuple[float, ...] | None = None) -> Pipeline:
    reader = FakeReader({1: Rec((TC(text, conf, char_confs or (conf,) * len(text)),))})
    return Pipeline(locator=lambda img, top_k: [Cand(CORNERS, 1.0, crop(1))], reader=reader)


def test_several_regions_name_the_one_whose_formats_fit_best():
    """A site near a border lists several regions: a Brazilian serial is returned as "br" and a
    French one as "eu", whichever order the site lists them in; one region still works."""
    for regions in (("us", "br"), ["br", "us"]):
        r = _one_reading("ABC1234").recognize(frame(), regions)
        assert (r.text, r.region) == ("ABC1234", "br")
    for regions in (("br", "eu"), ("eu", "br"), ("us", "eu")):
        r = _one_reading("AB123CD").recognize(frame(), regions)
        assert (r.text, r.region) == ("AB123CD", "eu")
    # a serial valid in two regions (Brazil, and a German district code) goes to the first listed
    assert _one_reading("ABC1234").recognize(frame(), ("eu", "br")).region == "eu"
    assert _one_reading("ABC1234").recognize(frame(), ("br", "eu")).region == "br"
    assert _one_reading("AB123CD").recognize(frame(), "eu").region == "eu"
    assert _one_reading("ABC1234").recognize(frame()).region == "us"  # the default, as before


def test_several_regions_apply_each_regions_corrections():
    """A look-alike is corrected by the region whose format demands it (br: third character a
    letter) when the reader was unsure of it, and a text that fits no region better than
    another keeps the first listed."""
    unsure_third = (0.9, 0.9, 0.3, 0.9, 0.9, 0.9, 0.9)
    r = _one_reading("AB01234", char_confs=unsure_third).recognize(frame(), ("us", "br"))
    assert (r.text, r.region) == ("ABO1234", "br")
    # read sure of every character, the digit stays: a US plate, not a bent Brazilian one
    r = _one_reading("AB01234", char_confs=(0.99,) * 7).recognize(frame(), ("us", "br"))
    assert (r.text, r.region) == ("AB01234", "us")
    r = _one_reading("7").recognize(frame(), ("us", "br"))
    assert r.reason == "unreadable_plate" and r.region == "us"


def test_regions_are_checked_before_any_work():
    pipe = Pipeline(locator=lambda img, top_k: pytest.fail("located before the regions were checked"),
                    reader=FakeReader({}))
    for bad in ([], (), ("us", "mars"), ["eu", None]):
        with pytest.raises(ValueError):
            pipe.recognize(frame(), bad)


def test_module_level_recognize_accepts_a_list_of_regions(monkeypatch):
    from parkinglot.lpr import pipeline

    monkeypatch.setattr(pipeline, "_default", _one_reading("AB123CD"))
    r = pipeline.recognize(frame(), ["br", "eu"])
    assert (r.text, r.region) == ("AB123CD", "eu")


def test_a_confident_reading_that_fits_no_format_does_not_end_the_search():
    """Half a Brazilian plate read with full confidence ("1234": no br format has four
    characters) must not stop the pipeline before the whole plate, ranked lower, is read."""
    table = {1: Rec((TC("1234", 0.99, (0.99,) * 4),)), 2: Rec((TC("ABC1234", 0.9, (0.9,) * 7),))}
    reader = FakeReader(table)
    cands = [Cand(CORNERS, 1.0, crop(1)), Cand(CORNERS, 0.5, crop(2))]
    r = Pipeline(locator=lambda img, top_k: cands, reader=reader).recognize(frame(), "br")
    assert r.text == "ABC1234" and reader.batches == [1, 1]


@pytest.mark.ocr
def test_a_two_row_plate_in_a_frame_comes_back_as_one_plate():
    """The real locator and reader on synthetic frames with a two-row plate: the pipeline
    returns the top row then the bottom row as one plate ("us": no format forces a letter or
    a digit anywhere, so the reading is the reader's own)."""
    from parkinglot.lpr.ocr import get_reader

    from .lpr_synth_frames import make_frame

    pipe = Pipeline(reader=get_reader("auto"))
    frames = [make_frame(seed, lines=2) for seed in range(12)]
    results = [pipe.recognize(f.image, "us") for f in frames]
    right = sum(r.text == f.text.replace(" ", "") for r, f in zip(results, frames))
    assert right >= 6, [(r.text, f.text) for r, f in zip(results, frames)]
