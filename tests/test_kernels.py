"""Each numba kernel against its OpenCV or NumPy reference, edge cases included."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from parkinglot.lpr import kernels as K

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SHAPES = [(1, 1), (1, 17), (17, 1), (2, 3), (7, 5), (31, 47), (64, 96)]


def _images(shape: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random, all-black, all-white, smooth and a non-contiguous slice of that shape."""
    rng = np.random.default_rng(seed)
    h, w = shape
    wide = rng.integers(0, 256, (h, 2 * w), dtype=np.uint8)
    smooth = cv2.resize(rng.integers(0, 256, (max(1, h // 4), max(1, w // 4)), dtype=np.uint8), (w, h))
    return {
        "random": rng.integers(0, 256, shape, dtype=np.uint8),
        "black": np.zeros(shape, np.uint8),
        "white": np.full(shape, 255, np.uint8),
        "smooth": smooth.reshape(shape),
        "strided": wide[:, ::2],
    }


def _cases():
    for shape in SHAPES:
        for name, img in _images(shape).items():
            yield pytest.param(img, id=f"{name}-{shape[0]}x{shape[1]}")


IMAGES = list(_cases())
small_gray = arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24)))


def _binary(img: np.ndarray) -> np.ndarray:
    return np.where(img > 127, 255, 0).astype(np.uint8)


# ----------------------------------------------------------------------------- grayscale


@pytest.mark.parametrize("shape", SHAPES)
def test_gray_matches_cvtcolor(shape):
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.abs(K.to_gray(bgr).astype(int) - ref).max() <= 1
    strided = rng.integers(0, 256, (shape[0], 2 * shape[1], 3), dtype=np.uint8)[:, ::2]
    assert np.abs(K.to_gray(strided).astype(int) - cv2.cvtColor(np.ascontiguousarray(strided),
                                                                 cv2.COLOR_BGR2GRAY)).max() <= 1


def test_gray_passes_grayscale_through():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(K.to_gray(g), g)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4,), np.uint8), np.zeros((0, 4, 3), np.uint8), [[1, 2]]])
def test_gray_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        K.to_gray(bad)


# ----------------------------------------------------------------------------- integral


@pytest.mark.parametrize("img", IMAGES)
def test_integral_matches_cv2(img):
    s, sq = cv2.integral2(np.ascontiguousarray(img))
    assert np.array_equal(K.integral(img), s)
    assert np.array_equal(K.integral_sq(img), sq)


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("img", IMAGES)
@pytest.mark.parametrize("block,c", [(3, 0), (15, -3), (25, 8)])
def test_adaptive_matches_cv2(img, block, c):
    src = np.ascontiguousarray(img)
    inv = cv2.adaptiveThreshold(src, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, c)
    fwd = cv2.adaptiveThreshold(src, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, c)
    assert np.array_equal(K.adaptive_threshold_mean(img, block, c, inverse=True), inv)
    assert np.array_equal(K.adaptive_threshold_mean(img, block, c), fwd)
    dark, light = K.adaptive_threshold_both(img, block, c)
    assert np.array_equal(dark, inv)
    assert np.array_equal(light, cv2.adaptiveThreshold(src, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                                       cv2.THRESH_BINARY, block, -c))


@pytest.mark.parametrize("img", IMAGES)
def test_box_mean_matches_cv2(img):
    ref = cv2.boxFilter(np.ascontiguousarray(img), -1, (7, 7), borderType=cv2.BORDER_REPLICATE)
    assert np.array_equal(K.box_mean(img, 7), ref)


@HYP
@given(small_gray, st.sampled_from([3, 5, 9]), st.integers(-10, 10))
def test_adaptive_random(img, block, c):
    ref = cv2.adaptiveThreshold(img, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, c)
    assert np.array_equal(K.adaptive_threshold_mean(img, block, c, inverse=True), ref)


def _sauvola_ref(g: np.ndarray, wnd: int, k: float = 0.2, r: float = 128.0) -> tuple[np.ndarray, np.ndarray]:
    rad = wnd // 2
    p = np.pad(g.astype(np.float64), rad, mode="edge")

    def box(a):
        c = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), 0), 1)
        return c[wnd:, wnd:] - c[:-wnd, wnd:] - c[wnd:, :-wnd] + c[:-wnd, :-wnd]

    n = wnd * wnd
    m = box(p) / n
    sd = np.sqrt(np.maximum(box(p * p) / n - m * m, 0))
    t = m * (1 + k * (sd / r - 1))
    return np.where(g > t, 255, 0).astype(np.uint8), t


@pytest.mark.parametrize("img", IMAGES)
def test_sauvola_matches_numpy(img):
    got = K.sauvola_threshold(img, 9)
    ref, t = _sauvola_ref(np.ascontiguousarray(img), 9)
    tie = np.abs(img.astype(np.float64) - t) < 1e-6  # float rounding may flip exact ties
    assert np.array_equal(got[~tie], ref[~tie])
    assert np.array_equal(K.sauvola_threshold(img, 9, inverse=True)[~tie], 255 - ref[~tie])


@pytest.mark.parametrize("call", [
    lambda g: K.adaptive_threshold_mean(g, 4, 0),
    lambda g: K.adaptive_threshold_mean(g, 1, 0),
    lambda g: K.adaptive_threshold_mean(g, 5, 1.5),
    lambda g: K.adaptive_threshold_both(g.astype(np.float32), 5, 0),
    lambda g: K.sauvola_threshold(g, 6),
    lambda g: K.sauvola_threshold(g, 5, r=0),
    lambda g: K.box_mean(g[..., None], 5),
])
def test_threshold_rejects_bad_args(call):
    with pytest.raises(ValueError):
        call(np.zeros((8, 8), np.uint8))


# ----------------------------------------------------------------------------- Sobel


@pytest.mark.parametrize("img", IMAGES)
def test_sobel_x_matches_cv2(img):
    ref = cv2.Sobel(np.ascontiguousarray(img), cv2.CV_16S, 1, 0, ksize=3)
    assert np.array_equal(K.sobel_x(img), ref)
    assert np.array_equal(K.sobel_x(img, absolute=True), cv2.convertScaleAbs(ref))


@HYP
@given(small_gray)
def test_sobel_random(img):
    assert np.array_equal(K.sobel_x(img), cv2.Sobel(img, cv2.CV_16S, 1, 0, ksize=3))


# ----------------------------------------------------------------------------- morphology

KSIZES = [(1, 1), (3, 3), (2, 4), (5, 1), (1, 6), (17, 3), (9, 5), (70, 3)]


def _cv_morph(op: str, img: np.ndarray, ksize: tuple[int, int]) -> np.ndarray:
    kern = cv2.getStructuringElement(cv2.MORPH_RECT, ksize)
    img = np.ascontiguousarray(img)
    return {"dilate": lambda: cv2.dilate(img, kern), "erode": lambda: cv2.erode(img, kern),
            "close": lambda: cv2.morphologyEx(img, cv2.MORPH_CLOSE, kern),
            "open": lambda: cv2.morphologyEx(img, cv2.MORPH_OPEN, kern)}[op]()


MORPH = {"dilate": K.dilate, "erode": K.erode, "close": K.close, "open": K.open_}


@pytest.mark.parametrize("img", IMAGES)
@pytest.mark.parametrize("op", list(MORPH))
def test_morphology_matches_cv2(op, img):
    for ksize in KSIZES:  # even sizes check the anchor, 70 the wide-window path
        assert np.array_equal(MORPH[op](img, ksize), _cv_morph(op, img, ksize)), ksize


@HYP
@given(small_gray, st.integers(1, 9), st.integers(1, 9), st.sampled_from(list(MORPH)))
def test_morphology_random(img, kw, kh, op):
    assert np.array_equal(MORPH[op](img, (kw, kh)), _cv_morph(op, img, (kw, kh)))


@pytest.mark.parametrize("ksize", [(0, 3), (3, -1), (3,), "ab", None])
def test_morphology_rejects_bad_ksize(ksize):
    with pytest.raises(ValueError):
        K.dilate(np.zeros((5, 5), np.uint8), ksize)


def test_morphology_rejects_bad_image():
    with pytest.raises(ValueError):
        K.erode(np.zeros((5, 5), np.int16), (3, 3))
    with pytest.raises(ValueError):
        K.close(np.zeros((5, 5, 3), np.uint8), (3, 3))


# ----------------------------------------------------------------------------- connected components


def _check_cc(binary: np.ndarray, connectivity: int) -> None:
    n, _, ref, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(binary), connectivity=connectivity)
    labels, stats, fill = K.connected_components(binary, connectivity)
    assert len(stats) == n
    assert sorted(map(tuple, stats[1:])) == sorted(map(tuple, ref[1:]))
    if ref[0, 4] > 0:
        assert np.array_equal(stats[0], ref[0])
    # labels agree with the stats and cover exactly the foreground
    assert np.array_equal(labels > 0, binary > 0)
    counts = np.bincount(labels.ravel(), minlength=len(stats))
    assert np.array_equal(counts[1:], stats[1:, 4])
    boxes = stats[1:, 2] * stats[1:, 3]
    assert np.allclose(fill[1:], stats[1:, 4] / np.maximum(boxes, 1))


@pytest.mark.parametrize("img", IMAGES)
@pytest.mark.parametrize("connectivity", [4, 8])
def test_cc_matches_cv2(img, connectivity):
    _check_cc(_binary(img), connectivity)


@HYP
@given(arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.sampled_from([0, 1, 255])),
       st.sampled_from([4, 8]))
def test_cc_random(binary, connectivity):
    _check_cc(binary, connectivity)


def test_cc_shapes_and_no_labels():
    b = np.zeros((9, 12), np.uint8)
    b[1:4, 1:3] = 255      # 2x3 block
    b[5, 5] = 255          # diagonal pair: one blob in 8-connectivity, two in 4
    b[6, 6] = 255
    _, st8, _ = K.connected_components(b, 8)
    _, st4, _ = K.connected_components(b, 4)
    assert len(st8) == 3 and len(st4) == 4
    labels, stats, fill = K.connected_components(b, labels=False)
    assert labels.shape == (0, 12)
    assert sorted(map(tuple, stats[1:])) == [(1, 1, 2, 3, 6), (5, 5, 2, 2, 2)]
    assert sorted(fill[1:].round(3)) == [0.5, 1.0]


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.int32), np.zeros((4, 4, 1), np.uint8)])
def test_cc_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        K.connected_components(bad)
    with pytest.raises(ValueError):
        K.connected_components(np.zeros((4, 4), np.uint8), connectivity=6)


# ----------------------------------------------------------------------------- row linking


def test_link_rows_groups_a_row_and_leaves_strays():
    row = [(10 + 14 * i, 20 + (i % 2), 10, 20) for i in range(6)]
    stray = [(60, 80, 10, 20), (200, 20, 10, 60)]  # another line; far too tall
    boxes = np.array(sorted(row + stray), np.int32)
    roots = K.link_rows(boxes)
    in_row = [i for i, b in enumerate(boxes.tolist()) if tuple(b) in row]
    assert len({int(roots[i]) for i in in_row}) == 1
    assert len(set(roots.tolist())) == 3


def test_link_rows_validates():
    with pytest.raises(ValueError):
        K.link_rows(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        K.link_rows(np.array([[5, 0, 1, 1], [1, 0, 1, 1]]))


@pytest.mark.parametrize("img", IMAGES[:10])
def test_sobel_x_edge_mask(img):
    ref = np.abs(cv2.Sobel(np.ascontiguousarray(img), cv2.CV_16S, 1, 0, ksize=3).astype(np.int32))
    assert np.array_equal(K.sobel_x(img, threshold=40), np.where(ref >= 40, 255, 0).astype(np.uint8))
    with pytest.raises(ValueError):
        K.sobel_x(img, threshold=2.5)
