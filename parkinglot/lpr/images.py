"""Decoding camera frames safely.

Frames come from the network, so the decoder refuses anything that is not a
JPEG or PNG, and reads the dimensions from the header *before* decoding, so a
decompression bomb (a small file that claims billions of pixels) is refused
without allocating its pixels.
"""
from __future__ import annotations

import struct
from typing import Optional

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """A frame we cannot use. ``code`` is stable for API error bodies."""

    code = "bad_image"


class EmptyImage(ImageError):
    code = "empty_image"


class NotAnImage(ImageError):
    code = "not_an_image"


class CorruptImage(ImageError):
    code = "corrupt_image"


class ImageTooLarge(ImageError):
    code = "image_too_large"


def sniff(data: bytes) -> Optional[str]:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return None


def _png_size(data: bytes) -> Optional[tuple[int, int]]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    return w, h


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> Optional[tuple[int, int]]:
    """Walk the JPEG markers to the first start-of-frame segment."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
        if seg_len < 2:
            return None
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + seg_len
    return None


def header_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from the file header, or None if the header is unreadable."""
    kind = sniff(data)
    if kind == "image/png":
        return _png_size(data)
    if kind == "image/jpeg":
        return _jpeg_size(data)
    return None


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """JPEG/PNG bytes -> BGR uint8 array, or a typed ``ImageError`` with a clear message."""
    if not data:
        raise EmptyImage("the frame is empty")
    kind = sniff(data)
    if kind is None:
        raise NotAnImage("the frame is not a JPEG or PNG image")
    size = header_size(data)
    if size is None:
        raise CorruptImage(f"the {kind.split('/')[1].upper()} header is corrupt or truncated")
    w, h = size
    if w == 0 or h == 0:
        raise CorruptImage("the image has no pixels")
    if w * h > max_pixels:
        raise ImageTooLarge(f"the image is {w}x{h} ({w * h / 1e6:.1f} MP); the limit is {max_pixels / 1e6:.0f} MP")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise CorruptImage(f"the {kind.split('/')[1].upper()} data could not be decoded")
    return img


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """Accept grayscale, BGR or BGRA arrays; return contiguous BGR uint8."""
    if not isinstance(frame, np.ndarray):
        raise NotAnImage(f"expected bytes or a numpy array, got {type(frame).__name__}")
    if frame.size == 0:
        raise EmptyImage("the frame array is empty")
    if frame.dtype != np.uint8:
        raise NotAnImage(f"frame arrays must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise NotAnImage(f"unsupported frame shape {frame.shape}")
