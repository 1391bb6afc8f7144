"""Hostile bytes into the image decoder: a typed ImageError or a decoded image, never a crash or a hang.

No test here times anything (no wall-clock asserts in unit tests): a size bomb is shown to be
refused *before* the decoder runs by counting the decoder's calls, and a hang would end the
run at pytest-timeout's limit (pyproject.toml).
"""
import struct
import zlib
from contextlib import contextmanager
from unittest import mock

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from parkinglot.lpr import images


def _png(w, h, payload=b"\x00"):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b""))


SEED_JPEG = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8))[1].tobytes()
SEED_PNG = cv2.imencode(".png", np.random.default_rng(2).integers(0, 255, (30, 40, 3), dtype=np.uint8))[1].tobytes()


@contextmanager
def _decoder_calls():
    """Counts the calls of OpenCV's decoder made through ``images`` (the mock wraps the real one)."""
    with mock.patch.object(images.cv2, "imdecode", wraps=cv2.imdecode) as decoder:
        yield decoder


def _decode_bounded(data: bytes) -> None:
    try:
        img = images.decode(data, max_pixels=4_000_000)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    except images.ImageError as exc:
        assert exc.code in ("empty_image", "not_an_image", "corrupt_image", "image_too_large")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _decode_bounded(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([SEED_JPEG, SEED_PNG]), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                          max_size=12), st.integers(0, 10_000))
def test_mutated_real_images(seed, flips, cut):
    data = bytearray(seed)
    for pos, value in flips:
        data[pos % len(data)] = value
    _decode_bounded(bytes(data[: max(1, len(data) - cut % len(data))]))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200_000), st.integers(1, 200_000))
def test_claimed_sizes_are_checked_before_decoding(w, h):
    data = _png(w, h)
    if w * h > 4_000_000:
        with _decoder_calls() as decoder, pytest.raises(images.ImageTooLarge):
            images.decode(data, max_pixels=4_000_000)
        assert decoder.call_count == 0  # refused from the header, never decoded
    else:
        _decode_bounded(data)


def test_jpeg_bomb_header_is_refused_without_decoding():
    """A JPEG whose SOF claims 60000x60000 pixels is refused from its header."""
    data = bytearray(SEED_JPEG)
    i = 2
    while i < len(data):
        marker = data[i + 1]
        seg = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC2):
            data[i + 5:i + 9] = struct.pack(">HH", 60000, 60000)
            break
        i += 2 + seg
    with _decoder_calls() as decoder, pytest.raises(images.ImageTooLarge):
        images.decode(bytes(data))
    assert decoder.call_count == 0
    with _decoder_calls() as decoder:  # the count is real: the untouched image is decoded, once
        images.decode(SEED_JPEG)
    assert decoder.call_count == 1
