"""Numba kernels for plate localisation: per-pixel preprocessing, arrays in, arrays out.

Each private ``_kernel`` is ``@njit(cache=True, nogil=True)`` (a web worker's other
threads keep running while one is in a kernel) and trusts its input. The public wrapper
next to it validates dtype, ndim and shape (raising ``ValueError``), makes the input
C-contiguous, then calls the kernel. Every kernel reproduces an OpenCV
function bit for bit (or as stated in its docstring) so that it can be tested
against it and so the locator behaves the same whichever backend produced a map.

No I/O and no state at import beyond the compiled kernels.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "to_gray",
    "integral",
    "integral_sq",
    "box_mean",
    "adaptive_threshold_mean",
    "adaptive_threshold_both",
    "sauvola_threshold",
    "sobel_x",
    "dilate",
    "erode",
    "close",
    "open_",
    "connected_components",
    "link_rows",
]

# ----------------------------------------------------------------------------- validation


def _check_image(img: np.ndarray, name: str = "image", *, ndim: tuple[int, ...] = (2,),
                 dtype: type = np.uint8, channels: int | None = None) -> np.ndarray:
    """Validate an image argument and return it C-contiguous."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(img).__name__}")
    if img.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, got {img.dtype}")
    if img.ndim not in ndim:
        raise ValueError(f"{name} must have ndim in {ndim}, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {img.shape}")
    if channels is not None and img.ndim == 3 and img.shape[2] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {img.shape}")
    return np.ascontiguousarray(img)


def _check_ksize(ksize: tuple[int, int]) -> tuple[int, int]:
    try:
        kw, kh = (int(v) for v in ksize)
    except (TypeError, ValueError):
        raise ValueError(f"ksize must be a (width, height) pair of ints, got {ksize!r}") from None
    if kw < 1 or kh < 1:
        raise ValueError(f"ksize must be positive, got {ksize!r}")
    return kw, kh


# ----------------------------------------------------------------------------- grayscale
# Hot loops index with the loop variable only (offsets are taken as views outside the
# loop): numba must wrap negative indices, and a computed index such as ``x + k``
# with signed ``k`` turns a vectorised loop into a scalar one (measured ~20x slower).


@njit(cache=True, nogil=True)
def _to_gray(bgr):
    # OpenCV's fixed-point BT.601 weights (15-bit), so results are identical to cvtColor.
    h, w, _ = bgr.shape
    flat = bgr.reshape(h * w * 3)
    out = np.empty(h * w, np.uint8)
    for i in range(h * w):
        b = np.int32(flat[3 * i])
        g = np.int32(flat[3 * i + 1])
        r = np.int32(flat[3 * i + 2])
        out[i] = np.uint8((b * 3735 + g * 19235 + r * 9798 + 16384) >> 15)
    return out.reshape(h, w)


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR (h, w, 3) uint8 -> grayscale uint8, identical to ``cv2.COLOR_BGR2GRAY``.

    A 2-D uint8 image is returned as is (already grayscale), so callers can pass either.
    """
    img = _check_image(image, ndim=(2, 3), channels=3)
    if img.ndim == 2:
        return img
    return _to_gray(img)


# ----------------------------------------------------------------------------- integral images


@njit(cache=True, nogil=True)
def _integral_into(gray, out):
    # Column sums first (a vectorised add per row), then one prefix chain per row over
    # them: ~10% faster than a row chain over the bytes followed by adding the row above.
    h, w = gray.shape
    acc = np.zeros(w, out.dtype)
    for x in range(w + 1):
        out[0, x] = 0
    for y in range(h):
        g = gray[y]
        for x in range(w):
            acc[x] += g[x]
        row = out[y + 1]
        row[0] = 0
        s = out[0, 0]
        for x in range(w):
            s += acc[x]
            row[x + 1] = s
    return out


@njit(cache=True, nogil=True)
def _integral_sq(gray):
    h, w = gray.shape
    out = np.empty((h + 1, w + 1), np.float64)
    for x in range(w + 1):
        out[0, x] = 0.0
    for y in range(h):
        g = gray[y]
        cur = out[y + 1, 1:]
        prev = out[y, 1:]
        out[y + 1, 0] = 0.0
        s = np.int64(0)
        for x in range(w):
            v = np.int64(g[x])
            s += v * v
            cur[x] = s
        for x in range(w):
            cur[x] += prev[x]
    return out


def integral(gray: np.ndarray) -> np.ndarray:
    """Summed-area table (h+1, w+1), equal to ``cv2.integral``.

    int32 like OpenCV while the total cannot overflow it, int64 beyond (~8.4 Mpx).
    """
    g = _check_image(gray, "gray")
    h, w = g.shape
    # Allocated by NumPy, not inside the kernel: NumPy asks for transparent huge pages on
    # large arrays, which saves ~900 page faults per 720p table (measured 2.0-2.2x -> 1.8x of OpenCV).
    out = np.empty((h + 1, w + 1), np.int32 if g.size * 255 < 2**31 else np.int64)
    return _integral_into(g, out)


def integral_sq(gray: np.ndarray) -> np.ndarray:
    """Squared summed-area table (h+1, w+1) float64, equal to ``cv2.integral2``'s sqsum."""
    return _integral_sq(_check_image(gray, "gray"))


# ----------------------------------------------------------------------------- local mean / thresholds


@njit(cache=True, nogil=True)
def _hsum_row(row, r, buf, out, sq):
    # Running horizontal window sum (width 2r+1) with replicated border; of the
    # squared values when ``sq`` (Sauvola's variance).
    w = row.shape[0]
    first = np.int32(row[0])
    last = np.int32(row[w - 1])
    if sq:
        first *= first
        last *= last
    for i in range(r):
        buf[i] = first
        buf[w + r + i] = last
    mid = buf[r:r + w]
    if sq:
        for x in range(w):
            v = np.int32(row[x])
            mid[x] = v * v
    else:
        for x in range(w):
            mid[x] = np.int32(row[x])
    s = np.int32(0)
    for i in range(2 * r + 1):
        s += buf[i]
    out[0] = s
    add = buf[2 * r + 1:]
    sub = buf[:w - 1]
    dst = out[1:]
    for x in range(w - 1):
        s += add[x] - sub[x]
        dst[x] = s


@njit(cache=True, nogil=True)
def _box_rows(gray, r, y, ring, buf, acc, sq=False):
    # Advance the vertical window to row y: returns nothing, updates acc in place.
    h, w = gray.shape
    k2 = 2 * r + 2
    if y == 0:
        for q in range(min(r, h - 1) + 1):
            _hsum_row(gray[q], r, buf, ring[q % k2], sq)
        for x in range(w):
            acc[x] = 0
        for i in range(-r, r + 1):
            q = min(max(i, 0), h - 1)
            src = ring[q % k2]
            for x in range(w):
                acc[x] += src[x]
        return
    qin = min(y + r, h - 1)
    qout = max(y - r - 1, 0)
    if y + r <= h - 1:
        _hsum_row(gray[qin], r, buf, ring[qin % k2], sq)
    a = ring[qin % k2]
    b = ring[qout % k2]
    for x in range(w):
        acc[x] += a[x] - b[x]


@njit(cache=True, nogil=True)
def _box_mean(gray, r):
    h, w = gray.shape
    k2 = 2 * r + 2
    kk = (2 * r + 1) * (2 * r + 1)
    ring = np.empty((k2, w), np.int32)
    buf = np.empty(w + 2 * r, np.int32)
    acc = np.empty(w, np.int32)
    out = np.empty((h, w), np.uint8)
    for y in range(h):
        _box_rows(gray, r, y, ring, buf, acc)
        o = out[y]
        for x in range(w):
            # round-half-even == round-half-up here: kk is odd so no ties exist.
            o[x] = np.uint8((2 * acc[x] + kk) // (2 * kk))
    return out


@njit(cache=True, nogil=True)
def _adaptive_both(gray, r, c_dark, c_light, want_dark, want_light):
    # dark : 255 where src <= mean - c_dark   (cv2 THRESH_BINARY_INV, C = c_dark)
    # light: 255 where src >  mean + c_light  (cv2 THRESH_BINARY,     C = -c_light)
    # with mean = round(sum / kk). Both tests are done without division:
    #   t <= round(sum/kk)  <=>  2*kk*t <= 2*sum + kk   (t integer, kk odd)
    h, w = gray.shape
    k2 = 2 * r + 2
    kk = np.int32((2 * r + 1) * (2 * r + 1))
    ring = np.empty((k2, w), np.int32)
    buf = np.empty(w + 2 * r, np.int32)
    acc = np.empty(w, np.int32)
    dark = np.empty((h if want_dark else 0, w), np.uint8)
    light = np.empty((h if want_light else 0, w), np.uint8)
    two_kk = 2 * kk
    for y in range(h):
        _box_rows(gray, r, y, ring, buf, acc)
        g = gray[y]
        if want_dark:
            d = dark[y]
            for x in range(w):
                lhs = two_kk * (np.int32(g[x]) + c_dark)
                d[x] = np.uint8(255) if lhs <= 2 * acc[x] + kk else np.uint8(0)
        if want_light:
            li = light[y]
            for x in range(w):
                lhs = two_kk * (np.int32(g[x]) - c_light)
                li[x] = np.uint8(255) if lhs > 2 * acc[x] + kk else np.uint8(0)
    return dark, light


def _check_block(block_size: int) -> int:
    if int(block_size) != block_size or block_size < 3 or block_size % 2 == 0:
        raise ValueError(f"block_size must be an odd integer >= 3, got {block_size!r}")
    return int(block_size)


def _check_c(c: int) -> int:
    if int(c) != c:
        raise ValueError(f"c must be an integer, got {c!r}")
    return int(c)


def box_mean(gray: np.ndarray, block_size: int) -> np.ndarray:
    """Local mean over a block_size square, replicated border, rounded to uint8.

    Equal to ``cv2.boxFilter(gray, -1, (b, b), borderType=BORDER_REPLICATE)``.
    """
    g = _check_image(gray, "gray")
    b = _check_block(block_size)
    return _box_mean(g, b // 2)


def adaptive_threshold_mean(gray: np.ndarray, block_size: int, c: int, *,
                            inverse: bool = False) -> np.ndarray:
    """Local-mean threshold, equal to ``cv2.adaptiveThreshold(g, 255, MEAN_C, type, b, c)``.

    ``inverse=False`` is THRESH_BINARY (255 where src > mean - c); ``inverse=True`` is
    THRESH_BINARY_INV (255 where src <= mean - c). ``c`` must be an integer.
    """
    g = _check_image(gray, "gray")
    b = _check_block(block_size)
    c = _check_c(c)
    if inverse:
        dark, _ = _adaptive_both(g, b // 2, c, 0, True, False)
        return dark
    # src > mean - c  <=>  src > mean + (-c)
    _, light = _adaptive_both(g, b // 2, 0, -c, False, True)
    return light


def adaptive_threshold_both(gray: np.ndarray, block_size: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Both polarities from one local-mean pass: ``(dark, light)`` masks (0/255).

    ``dark`` marks pixels at least ``c`` below their local mean (dark characters on a
    light plate), ``light`` pixels more than ``c`` above it (light on dark). Equal to
    ``cv2.adaptiveThreshold`` with (BINARY_INV, c) and (BINARY, -c) respectively.
    """
    g = _check_image(gray, "gray")
    b = _check_block(block_size)
    c = _check_c(c)
    return _adaptive_both(g, b // 2, c, c, True, True)


@njit(cache=True, nogil=True)
def _sauvola(gray, r, k, rng, inverse):
    # Window sums of v and v^2 come from the same running-sum machinery as the mean
    # threshold (replicated border), so no full-size int64/float64 tables are written.
    h, w = gray.shape
    k2 = 2 * r + 2
    inv_n = 1.0 / ((2 * r + 1) * (2 * r + 1))
    ring1 = np.empty((k2, w), np.int32)
    ring2 = np.empty((k2, w), np.int32)
    buf = np.empty(w + 2 * r, np.int32)
    acc1 = np.empty(w, np.int32)
    acc2 = np.empty(w, np.int32)
    out = np.empty((h, w), np.uint8)
    hi = np.uint8(0) if inverse else np.uint8(255)
    lo = np.uint8(255) if inverse else np.uint8(0)
    for y in range(h):
        _box_rows(gray, r, y, ring1, buf, acc1, False)
        _box_rows(gray, r, y, ring2, buf, acc2, True)
        g = gray[y]
        o = out[y]
        for x in range(w):
            m = acc1[x] * inv_n
            var = acc2[x] * inv_n - m * m
            sd = np.sqrt(max(var, 0.0))
            t = m * (1.0 + k * (sd / rng - 1.0))
            o[x] = hi if g[x] > t else lo
    return out


def sauvola_threshold(gray: np.ndarray, window: int, *, k: float = 0.2, r: float = 128.0,
                      inverse: bool = False) -> np.ndarray:
    """Sauvola threshold ``T = m * (1 + k (s / r - 1))``: contrast-adaptive, for faded plates.

    Local mean and deviation over an odd square window with replicated border (like the
    mean threshold). 255 where ``src > T`` (``inverse``: where ``src <= T``, i.e. dark ink is foreground).
    """
    g = _check_image(gray, "gray")
    wnd = _check_block(window)
    if wnd > 181:
        raise ValueError(f"window must be <= 181 (int32 window sums), got {window!r}")
    if r <= 0:
        raise ValueError(f"r must be positive, got {r!r}")
    return _sauvola(g, wnd // 2, float(k), float(r), bool(inverse))


# ----------------------------------------------------------------------------- Sobel x


@njit(cache=True, nogil=True)
def _reflect101(i, n):
    if n == 1:
        return 0
    if i < 0:
        return -i
    if i >= n:
        return 2 * n - 2 - i
    return i


@njit(cache=True, nogil=True)
def _sobel_x(gray, mode, thr):
    # 3x3 Sobel d/dx: [1 2 1]^T vertical smoothing then [-1 0 1], BORDER_REFLECT_101.
    # mode 0: int16 gradient; 1: |gradient| saturated to uint8; 2: 255 where |g| >= thr.
    h, w = gray.shape
    v = np.empty(w + 2, np.int16)
    out16 = np.empty((h if mode == 0 else 0, w), np.int16)
    out8 = np.empty((0 if mode == 0 else h, w), np.uint8)
    right = v[2:]
    left = v[:w]
    for y in range(h):
        a = gray[_reflect101(y - 1, h)]
        b = gray[y]
        c = gray[_reflect101(y + 1, h)]
        mid = v[1:w + 1]
        for x in range(w):
            mid[x] = np.int16(a[x]) + 2 * np.int16(b[x]) + np.int16(c[x])
        v[0] = v[_reflect101(-1, w) + 1]
        v[w + 1] = v[_reflect101(w, w) + 1]
        if mode == 0:
            o16 = out16[y]
            for x in range(w):
                o16[x] = right[x] - left[x]
        elif mode == 1:
            o8 = out8[y]
            for x in range(w):
                d = right[x] - left[x]
                d = -d if d < 0 else d
                o8[x] = np.uint8(255) if d > 255 else np.uint8(d)
        else:
            o8 = out8[y]
            for x in range(w):
                d = right[x] - left[x]
                d = -d if d < 0 else d
                o8[x] = np.uint8(255) if d >= thr else np.uint8(0)
    return out16, out8


def sobel_x(gray: np.ndarray, *, absolute: bool = False, threshold: int | None = None) -> np.ndarray:
    """Horizontal gradient (vertical edges), equal to ``cv2.Sobel(g, CV_16S, 1, 0, ksize=3)``.

    ``absolute=True`` returns ``cv2.convertScaleAbs`` of it (uint8, saturated);
    ``threshold=t`` returns a 0/255 mask of ``|gradient| >= t``. Both are fused so the
    int16 map is never written.
    """
    g = _check_image(gray, "gray")
    if threshold is not None:
        if int(threshold) != threshold:
            raise ValueError(f"threshold must be an integer, got {threshold!r}")
        return _sobel_x(g, 2, int(threshold))[1]
    o16, o8 = _sobel_x(g, 1 if absolute else 0, 0)
    return o8 if absolute else o16


# ----------------------------------------------------------------------------- morphology
# Separable rectangular max/min (dilate/erode). Border pixels act as the identity
# (0 for max, 255 for min), which is what OpenCV's default border value amounts to.
#
# Vertical pass: van Herk / Gil-Werman. In blocks of k rows, a forward running extreme
# g and a backward one h; the window [y, y+k-1] is max(h[y], g[y+k-1]): three
# operations per pixel whatever k, done on whole row segments so they vectorise.
# (Windows of k <= 5 rows take the direct max instead: k - 1 operations per pixel.)
# Horizontal pass: along a row the van Herk recurrence is a scalar dependency chain,
# so for k < _HVHG_MIN the row is reduced by log-doubling instead (window 2, 4, 8, ...
# then one overlapping max: ceil(log2 k) + 1 vectorised passes over an L1-resident
# row), which measured faster than the scalar O(1) scan for every such k. Wider
# windows use the scalar van Herk scan, so no pass is worse than O(1) per pixel.

_HVHG_MIN = 64
_STRIP = 512


@njit(cache=True, nogil=True)
def _ext(dst, a, b, is_max):
    # dst[i] = max/min(a[i], b[i]) over len(dst); a, b, dst are same-length views.
    n = dst.shape[0]
    if is_max:
        for i in range(n):
            p = a[i]
            q = b[i]
            dst[i] = p if p > q else q
    else:
        for i in range(n):
            p = a[i]
            q = b[i]
            dst[i] = p if p < q else q


@njit(cache=True, nogil=True)
def _hpass(src, k, anchor, is_max):
    h, w = src.shape
    out = np.empty((h, w), np.uint8)
    ident = np.uint8(0) if is_max else np.uint8(255)
    n = w + k - 1
    a = np.full(n, ident, np.uint8)
    b = np.full(n, ident, np.uint8)
    if k >= _HVHG_MIN:
        nb = (n + k - 1) // k * k
        buf = np.full(nb, ident, np.uint8)
        g = np.empty(nb, np.uint8)
        hh = np.empty(nb, np.uint8)
        mid = buf[anchor:anchor + w]
        gk = g[k - 1:k - 1 + w]
        hw = hh[:w]
        for y in range(h):
            row = src[y]
            for x in range(w):
                mid[x] = row[x]
            for b0 in range(0, nb, k):
                blk = buf[b0:b0 + k]
                gb = g[b0:b0 + k]
                hb = hh[b0:b0 + k]
                m = blk[0]
                gb[0] = m
                for j in range(1, k):
                    v = blk[j]
                    if is_max:
                        m = v if v > m else m
                    else:
                        m = v if v < m else m
                    gb[j] = m
                m = blk[k - 1]
                hb[k - 1] = m
                for jj in range(1, k):
                    v = blk[k - 1 - jj]
                    if is_max:
                        m = v if v > m else m
                    else:
                        m = v if v < m else m
                    hb[k - 1 - jj] = m
            _ext(out[y], hw, gk, is_max)
        return out
    mid = a[anchor:anchor + w]
    for y in range(h):
        row = src[y]
        for x in range(w):
            mid[x] = row[x]
        cur = a
        nxt = b
        span = 1
        while span * 2 <= k:
            m = n - span
            _ext(nxt[:m], cur[:m], cur[span:span + m], is_max)
            cur, nxt = nxt, cur
            span *= 2
        d = k - span
        _ext(out[y], cur[:w], cur[d:d + w], is_max)
        if span >= 4:
            # a later pass wrote into ``a``: restore its identity padding
            for i in range(anchor):
                a[i] = ident
            for i in range(anchor + w, n):
                a[i] = ident
    return out


@njit(cache=True, nogil=True)
def _vpass_small(src, k, anchor, is_max):
    # k <= 5: the direct extreme of k rows costs k - 1 fused vector operations per
    # pixel with no block bookkeeping, measured faster than van Herk at these sizes.
    h, w = src.shape
    out = np.empty((h, w), np.uint8)
    tmp = np.empty(w, np.uint8)
    for y in range(h):
        y0 = max(y - anchor, 0)
        m = min(y - anchor + k, h) - y0  # rows inside the image (identity elsewhere)
        if m == 1:
            out[y, :] = src[y0]
        elif m == 2:
            _ext(out[y], src[y0], src[y0 + 1], is_max)
        elif m == 3:
            _ext3(out[y], src[y0], src[y0 + 1], src[y0 + 2], is_max)
        elif m == 4:
            _ext3(tmp, src[y0], src[y0 + 1], src[y0 + 2], is_max)
            _ext(out[y], tmp, src[y0 + 3], is_max)
        else:
            _ext3(tmp, src[y0], src[y0 + 1], src[y0 + 2], is_max)
            _ext3(out[y], tmp, src[y0 + 3], src[y0 + 4], is_max)
    return out


@njit(cache=True, nogil=True)
def _ext3(dst, a, b, c, is_max):
    n = dst.shape[0]
    if is_max:
        for i in range(n):
            p = a[i]
            q = b[i]
            r = c[i]
            p = p if p > q else q
            dst[i] = p if p > r else r
    else:
        for i in range(n):
            p = a[i]
            q = b[i]
            r = c[i]
            p = p if p < q else q
            dst[i] = p if p < r else r


@njit(cache=True, nogil=True)
def _vpass(src, k, anchor, is_max):
    h, w = src.shape
    if k <= 5:
        return _vpass_small(src, k, anchor, is_max)
    out = np.empty((h, w), np.uint8)
    ident = np.uint8(0) if is_max else np.uint8(255)
    n = h + k - 1
    nb = (n + k - 1) // k * k
    strip = min(_STRIP, w)
    g = np.empty((nb, strip), np.uint8)
    hh = np.empty((nb, strip), np.uint8)
    for s0 in range(0, w, strip):
        sw = min(strip, w - s0)
        for b0 in range(0, nb, k):
            for j in range(b0, b0 + k):  # forward extreme within the block
                yy = j - anchor
                gj = g[j, :sw]
                inside = yy >= 0 and yy < h
                if j == b0:
                    if inside:
                        srow = src[yy, s0:s0 + sw]
                        for x in range(sw):
                            gj[x] = srow[x]
                    else:
                        for x in range(sw):
                            gj[x] = ident
                elif inside:
                    _ext(gj, g[j - 1, :sw], src[yy, s0:s0 + sw], is_max)
                else:
                    gp = g[j - 1, :sw]
                    for x in range(sw):
                        gj[x] = gp[x]
            for jj in range(k):  # backward extreme within the block
                j = b0 + k - 1 - jj
                yy = j - anchor
                hj = hh[j, :sw]
                inside = yy >= 0 and yy < h
                if jj == 0:
                    if inside:
                        srow = src[yy, s0:s0 + sw]
                        for x in range(sw):
                            hj[x] = srow[x]
                    else:
                        for x in range(sw):
                            hj[x] = ident
                elif inside:
                    _ext(hj, hh[j + 1, :sw], src[yy, s0:s0 + sw], is_max)
                else:
                    hn = hh[j + 1, :sw]
                    for x in range(sw):
                        hj[x] = hn[x]
        for y in range(h):
            _ext(out[y, s0:s0 + sw], hh[y, :sw], g[y + k - 1, :sw], is_max)
    return out


@njit(cache=True, nogil=True)
def _morph(src, kw, kh, is_max):
    tmp = _hpass(src, kw, kw // 2, is_max) if kw > 1 else src.copy()
    if kh == 1:
        return tmp
    return _vpass(tmp, kh, kh // 2, is_max)


@njit(cache=True, nogil=True)
def _close(src, kw, kh):
    return _morph(_morph(src, kw, kh, True), kw, kh, False)


@njit(cache=True, nogil=True)
def _open(src, kw, kh):
    return _morph(_morph(src, kw, kh, False), kw, kh, True)


def dilate(image: np.ndarray, ksize: tuple[int, int]) -> np.ndarray:
    """Max filter over a (width, height) rectangle, equal to ``cv2.dilate`` with
    ``getStructuringElement(MORPH_RECT, ksize)`` and default anchor/border."""
    img = _check_image(image)
    kw, kh = _check_ksize(ksize)
    return _morph(img, kw, kh, True)


def erode(image: np.ndarray, ksize: tuple[int, int]) -> np.ndarray:
    """Min filter over a (width, height) rectangle, equal to ``cv2.erode`` (rect kernel)."""
    img = _check_image(image)
    kw, kh = _check_ksize(ksize)
    return _morph(img, kw, kh, False)


def close(image: np.ndarray, ksize: tuple[int, int]) -> np.ndarray:
    """Dilate then erode: fills gaps between strokes. Equal to ``cv2.morphologyEx(CLOSE)``."""
    img = _check_image(image)
    kw, kh = _check_ksize(ksize)
    return _close(img, kw, kh)


def open_(image: np.ndarray, ksize: tuple[int, int]) -> np.ndarray:
    """Erode then dilate: removes specks thinner than the kernel. Equal to ``cv2.morphologyEx(OPEN)``."""
    img = _check_image(image)
    kw, kh = _check_ksize(ksize)
    return _open(img, kw, kh)


# ----------------------------------------------------------------------------- connected components
# Run-based two-pass labelling: runs of foreground per row are the nodes of a
# union-find; a run joins the runs of the row above that overlap it (widened by one
# pixel each side for 8-connectivity). Work is per pixel for the scan and per run
# for everything else, so noisy threshold maps with many small blobs stay cheap.


@njit(cache=True, nogil=True)
def _find(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(cache=True, nogil=True)
def _cc(binary, connectivity, want_labels):
    h, w = binary.shape
    cap = h * ((w + 1) // 2) + 1
    rx0 = np.empty(cap, np.int32)
    rx1 = np.empty(cap, np.int32)  # exclusive end
    ry = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    n = 0
    prev_start = 0
    prev_end = 0
    grow = 1 if connectivity == 8 else 0
    # edges[x] = 1 where foreground starts or stops before pixel x (x in 0..w): a
    # vectorised pass, then a sparse walk over the (mostly zero) edge row.
    fgrow = np.zeros(w + 2, np.uint8)
    edges = np.empty(w + 1, np.uint8)
    inner = fgrow[1:w + 1]
    cur_fg = fgrow[1:]
    prv_fg = fgrow[:w + 1]
    for y in range(h):
        row = binary[y]
        for x in range(w):
            inner[x] = np.uint8(1) if row[x] != 0 else np.uint8(0)
        for x in range(w + 1):
            edges[x] = cur_fg[x] ^ prv_fg[x]
        cur_start = n
        opened = False
        for x in range(w + 1):
            if edges[x]:
                if opened:
                    rx1[n] = x
                    ry[n] = y
                    parent[n] = n
                    n += 1
                    opened = False
                else:
                    rx0[n] = x
                    opened = True
        # join with the row above: both run lists are sorted by x (two pointers)
        j = prev_start
        for i in range(cur_start, n):
            a0 = rx0[i] - grow
            a1 = rx1[i] + grow
            while j < prev_end and rx1[j] <= a0:
                j += 1
            jj = j
            ri = i  # a fresh run is its own root; ri stays the root of i's set
            while jj < prev_end and rx0[jj] < a1:
                rj = _find(parent, jj)
                if rj < ri:
                    parent[ri] = rj
                    ri = rj
                elif ri < rj:
                    parent[rj] = ri
                jj += 1
        prev_start = cur_start
        prev_end = n
    # consecutive labels in raster order of each component's first run
    lab = np.empty(n, np.int32)
    nlab = 1
    for i in range(n):
        if parent[i] == i:
            lab[i] = nlab
            nlab += 1
        else:
            lab[i] = lab[_find(parent, i)]
    stats = np.zeros((nlab, 5), np.int32)
    xmax = np.full(nlab, -1, np.int32)
    ymax = np.full(nlab, -1, np.int32)
    for L in range(1, nlab):
        stats[L, 0] = w
        stats[L, 1] = h
    fg = 0
    for i in range(n):
        L = lab[i]
        if rx0[i] < stats[L, 0]:
            stats[L, 0] = rx0[i]
        if ry[i] < stats[L, 1]:
            stats[L, 1] = ry[i]
        if rx1[i] - 1 > xmax[L]:
            xmax[L] = rx1[i] - 1
        if ry[i] > ymax[L]:
            ymax[L] = ry[i]
        length = rx1[i] - rx0[i]
        stats[L, 4] += length
        fg += length
    for L in range(1, nlab):
        stats[L, 2] = xmax[L] - stats[L, 0] + 1
        stats[L, 3] = ymax[L] - stats[L, 1] + 1
    # background row, as OpenCV reports it: box and count of the zero pixels
    stats[0, 4] = h * w - fg
    if stats[0, 4] > 0:
        bx0, by0, bx1, by1 = w, h, -1, -1
        r0 = 0
        for y in range(h):
            r1 = r0
            while r1 < n and ry[r1] == y:
                r1 += 1
            if r1 == r0:
                lo, hi = 0, w - 1
            elif r1 - r0 == 1 and rx0[r0] == 0 and rx1[r0] == w:
                lo, hi = w, -1  # row fully foreground
            else:
                lo = rx1[r0] if rx0[r0] == 0 else 0
                hi = rx0[r1 - 1] - 1 if rx1[r1 - 1] == w else w - 1
            if lo <= hi:
                bx0 = min(bx0, lo)
                bx1 = max(bx1, hi)
                by0 = min(by0, y)
                by1 = max(by1, y)
            r0 = r1
        stats[0, 0] = bx0
        stats[0, 1] = by0
        stats[0, 2] = bx1 - bx0 + 1
        stats[0, 3] = by1 - by0 + 1
    fill = np.empty(nlab, np.float32)
    for L in range(nlab):
        box = stats[L, 2] * stats[L, 3]
        fill[L] = stats[L, 4] / box if box > 0 else 0.0
    labels = np.zeros((h if want_labels else 0, w), np.int32)
    if want_labels:
        for i in range(n):
            L = lab[i]
            lr = labels[ry[i]]
            for x in range(rx0[i], rx1[i]):
                lr[x] = L
    return labels, stats, fill


def connected_components(binary: np.ndarray, connectivity: int = 8, *,
                         labels: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label the non-zero pixels: ``(labels, stats, fill)``.

    ``labels`` int32 (h, w), 0 = background (an empty (0, w) array when ``labels=False``,
    which skips writing the map). ``stats`` int32 (n, 5) rows ``x, y, w, h, area`` as in
    ``cv2.connectedComponentsWithStats`` (row 0 = background: box and count of the zero
    pixels; all zeros when there are none, where OpenCV reports a sentinel box). ``fill`` float32 (n,) = area / box area.
    Labels are numbered in raster order of each component's first pixel row run,
    so they may be a permutation of OpenCV's.
    """
    b = _check_image(binary, "binary")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return _cc(b, int(connectivity), bool(labels))


# ----------------------------------------------------------------------------- character rows


@njit(cache=True, nogil=True)
def _link_rows(boxes, max_ratio, max_dy, max_gap):
    # boxes sorted by x0. Each box links to its best right-hand neighbour of similar
    # height on the same line within reach; linked boxes share a root (union-find).
    n = boxes.shape[0]
    parent = np.arange(n)
    for i in range(n):
        x0 = boxes[i, 0]
        wi = boxes[i, 2]
        hi = boxes[i, 3]
        x1 = x0 + wi
        yc = boxes[i, 1] + hi / 2.0
        reach = x1 + max_gap * hi
        best = -1
        best_d = 1e18
        j = i + 1
        while j < n and boxes[j, 0] <= reach:
            hj = boxes[j, 3]
            wj = boxes[j, 2]
            r = hi / hj if hi > hj else hj / hi
            ycj = boxes[j, 1] + hj / 2.0
            dy = abs(ycj - yc)
            mw = min(wi, wj)
            if r <= max_ratio and dy <= max_dy * max(hi, hj) and boxes[j, 0] >= x0 + 0.25 * mw:
                gap = boxes[j, 0] - x1
                if gap > -0.3 * mw:
                    d = max(gap, 0.0) + dy
                    if d < best_d:
                        best_d = d
                        best = j
            j += 1
        if best >= 0:
            a = i
            while parent[a] != a:
                a = parent[a]
            b = best
            while parent[b] != b:
                b = parent[b]
            if a != b:
                if a < b:
                    parent[b] = a
                else:
                    parent[a] = b
    for i in range(n):
        a = i
        while parent[a] != a:
            a = parent[a]
        parent[i] = a
    return parent


def link_rows(boxes: np.ndarray, *, max_ratio: float = 1.3, max_dy: float = 0.3,
              max_gap: float = 1.6) -> np.ndarray:
    """Row id per box for (n, 4) int ``x, y, w, h`` boxes **sorted by x**.

    A box joins its nearest right-hand neighbour whose height is within ``max_ratio``,
    whose centre is within ``max_dy`` heights vertically and which starts within
    ``max_gap`` heights of its right edge: the way characters stand on a plate.
    Returns int64 (n,) roots (equal ids = same row).
    """
    if not isinstance(boxes, np.ndarray) or boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError("boxes must be an (n, 4) array of x, y, w, h")
    b = np.ascontiguousarray(boxes, dtype=np.float64)
    if len(b) > 1 and np.any(np.diff(b[:, 0]) < 0):
        raise ValueError("boxes must be sorted by x")
    return _link_rows(b, float(max_ratio), float(max_dy), float(max_gap))
