"""Plate reader: easyocr's recognition network run on plate crops only.

Two readers share one code path (normalisation, batching, CTC decoding):

* ``stock``: easyocr's ``english_g2`` recogniser, loaded offline through
  ``easyocr.Reader(..., detector=False)``; its 97-class output is restricted to the
  plate alphabet (lower case and punctuation dropped, as easyocr's allowlist does).
* ``tuned``: the same architecture fine-tuned on plates (``models/plate_g2.pth``,
  36 characters + blank), built from ``easyocr.model.vgg_model.Model``.

A square crop (a whole two-row plate) is read with its rows side by side, top row first
(``lines.as_one_line``). All crops of a frame go through the network in one padded batch. The CTC output is
decoded with a prefix beam search, which yields the top-N alternative texts; each
alternative gets per-character confidences from its best (Viterbi) alignment.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np
from numba import njit

from parkinglot.lpr import lines
from parkinglot.plates import ALPHABET, MAX_PLATE_LEN

log = logging.getLogger(__name__)

IMG_H = 64                       # english_g2 input height
PAD_X = 8                        # horizontal margin added by normalize_crop (px at IMG_H)
MIN_W, MAX_W = 32, 384           # normalised width bounds (px)
CHARSET = ALPHABET               # "0-9A-Z": class i+1 is CHARSET[i], class 0 is the CTC blank
NETWORK_PARAMS = {"input_channel": 1, "output_channel": 256, "hidden_size": 256}
MODELS_DIR = Path(os.environ.get("PARKINGLOT_MODELS_DIR") or Path(__file__).resolve().parents[2] / "models")
TUNED_NAME = "plate_g2"
TUNED_WEIGHTS = MODELS_DIR / f"{TUNED_NAME}.pth"
TOP_N = 5
BEAM_WIDTH = 8


@dataclass(frozen=True)
class TextCandidate:
    text: str                          # A-Z0-9 only
    confidence: float                  # 0..1, CTC probability of the whole text
    char_confidences: tuple[float, ...]


@dataclass(frozen=True)
class Recognition:
    candidates: tuple[TextCandidate, ...]   # best first

    @property
    def best(self) -> TextCandidate | None:
        return self.candidates[0] if self.candidates else None


class PlateReader(Protocol):
    name: str

    def read(self, crops: Sequence[np.ndarray]) -> list[Recognition]: ...


# --------------------------------------------------------------------------- normalisation
def _to_gray(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.size == 0 or img.ndim not in (2, 3):
        raise ValueError("crop must be a non-empty 2-D grayscale (or 3-D colour) array")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        else:
            img = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def _is_light_on_dark(gray: np.ndarray) -> bool:
    """Text is the minority class of an Otsu split of the crop's central part."""
    h, w = gray.shape
    core = gray[h // 5: h - h // 5 or h, w // 10: w - w // 10 or w]
    if core.size < 4:
        core = gray
    thr, _ = cv2.threshold(core, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = float(np.count_nonzero(core > thr)) / core.size
    return bright < 0.5


def normalize_crop(gray: np.ndarray) -> np.ndarray:
    """The one crop normalisation used in training and inference.

    Dark text on a light background, contrast stretched to the full range, height
    ``IMG_H`` with the aspect ratio kept (width clamped to ``MIN_W..MAX_W``), and a
    margin of ``PAD_X`` background pixels left and right. Returns uint8 (IMG_H, W).
    """
    g = _to_gray(gray)
    if _is_light_on_dark(g):
        g = 255 - g
    lo, hi = np.percentile(g, (2, 98))
    if hi - lo < 1:
        hi = lo + 1
    g = np.clip((g.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    h, w = g.shape
    inner_max = MAX_W - 2 * PAD_X
    nw = int(min(inner_max, max(MIN_W - 2 * PAD_X, round(w * IMG_H / h))))
    interp = cv2.INTER_AREA if h > IMG_H else cv2.INTER_CUBIC
    g = cv2.resize(g, (nw, IMG_H), interpolation=interp)
    bg = int(np.percentile(g, 90))
    return cv2.copyMakeBorder(g, 0, 0, PAD_X, PAD_X, cv2.BORDER_CONSTANT, value=bg)


def batch_tensor(images: Sequence[np.ndarray]):
    """Stack normalised crops into a (B, 1, IMG_H, Wmax) float tensor in [-1, 1].

    Narrower crops are right-padded by repeating their last column, as easyocr does.
    """
    import torch

    wmax = max(int(im.shape[1]) for im in images)
    out = np.empty((len(images), 1, IMG_H, wmax), np.float32)
    for i, im in enumerate(images):
        w = im.shape[1]
        out[i, 0, :, :w] = im
        if w < wmax:
            out[i, 0, :, w:] = im[:, w - 1:w]
    out = out / 127.5 - 1.0
    return torch.from_numpy(out)


# --------------------------------------------------------------------------- network
def build_network(num_class: int = len(CHARSET) + 1):
    """easyocr's generation-2 recogniser (VGG + 2 BiLSTM + linear), uninitialised."""
    from easyocr.model.vgg_model import Model

    return Model(num_class=num_class, **NETWORK_PARAMS)


def english_g2_path() -> str:
    import easyocr_en_models

    return os.path.join(easyocr_en_models.model_dir(), "english_g2.pth")


def english_g2_characters() -> str:
    from easyocr.config import recognition_models

    return recognition_models["gen2"]["english_g2"]["characters"]


def load_state_dict(path: str | os.PathLike):
    """Weights saved easyocr-style (keys prefixed ``module.``), any float dtype, as fp32."""
    import torch

    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return {(k[7:] if k.startswith("module.") else k): v.float() for k, v in sd.items()}


def stock_class_map() -> np.ndarray:
    """For each english_g2 class, the plate class it maps to (-1 = dropped).

    Like easyocr's ``allowlist``: lower case and symbols are dropped and the rest
    renormalised (folding lower case onto upper case instead turns the frame edges
    and bolts that english_g2 reads as "l", "i", "o" into extra characters).
    """
    chars = english_g2_characters()
    cmap = np.full(len(chars) + 1, -1, np.int64)
    cmap[0] = 0
    for i, ch in enumerate(chars):
        if ch in CHARSET:
            cmap[i + 1] = CHARSET.index(ch) + 1
    return cmap


# --------------------------------------------------------------------------- decoding
def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def beam_search(probs: np.ndarray, beam_width: int = BEAM_WIDTH, top_n: int = TOP_N,
                prune: float = 1e-3) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix beam search over a (T, C) probability matrix, blank = class 0.

    Returns up to ``top_n`` ``(label indices, probability)`` pairs, best first.
    """
    logp = np.log(np.maximum(probs, 1e-12))
    NEG = -math.inf
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, NEG]}   # prefix -> [log p_blank, log p_nonblank]
    for t in range(probs.shape[0]):
        row = probs[t]
        lrow = logp[t]
        cands = [int(c) for c in np.nonzero(row > prune)[0] if c != 0]
        if not cands:  # a blank-only column (most of them): every beam just absorbs the blank
            beams = {prefix: [_logaddexp(pb, pnb) + lrow[0], NEG] for prefix, (pb, pnb) in beams.items()}
            continue
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            e = nxt.setdefault(prefix, [NEG, NEG])
            e[0] = _logaddexp(e[0], total + lrow[0])
            last = prefix[-1] if prefix else -1
            for c in cands:
                lc = lrow[c]
                if c == last:
                    e[1] = _logaddexp(e[1], pnb + lc)         # repeat collapses
                    if pb > NEG and len(prefix) < MAX_PLATE_LEN:
                        ext = prefix + (c,)
                        f = nxt.setdefault(ext, [NEG, NEG])
                        f[1] = _logaddexp(f[1], pb + lc)
                elif len(prefix) < MAX_PLATE_LEN:
                    ext = prefix + (c,)
                    f = nxt.setdefault(ext, [NEG, NEG])
                    f[1] = _logaddexp(f[1], total + lc)
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)
        beams = dict(ranked[:beam_width])
    ranked = sorted(((p, _logaddexp(*v)) for p, v in beams.items()), key=lambda x: x[1], reverse=True)
    return [(p, float(math.exp(lp))) for p, lp in ranked[:top_n + 1]]


def char_confidences(probs: np.ndarray, labels: Sequence[int]) -> tuple[float, ...]:
    """Per-character confidence: the peak probability of each character on its best CTC alignment."""
    if len(labels) == 0:
        return ()
    lab = np.asarray(labels, np.int64)
    return tuple(float(v) for v in _viterbi_peaks(np.ascontiguousarray(probs, np.float32), lab))


@njit(cache=True, nogil=True)
def _viterbi_peaks(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Best CTC alignment of ``labels`` (Viterbi over the blank-extended label sequence) and,
    for each label, the highest probability it has on that alignment."""
    T = probs.shape[0]
    L = labels.shape[0]
    S = 2 * L + 1
    ext = np.zeros(S, np.int64)
    for k in range(L):
        ext[2 * k + 1] = labels[k]
    neg = -1e30
    dp = np.full((T, S), neg)
    back = np.zeros((T, S), np.int8)
    dp[0, 0] = np.log(max(probs[0, 0], 1e-12))
    if S > 1:
        dp[0, 1] = np.log(max(probs[0, ext[1]], 1e-12))
    for t in range(1, T):
        for j in range(S):
            best = dp[t - 1, j]
            arg = 0
            if j >= 1 and dp[t - 1, j - 1] > best:
                best = dp[t - 1, j - 1]
                arg = 1
            if j >= 2 and ext[j] != 0 and ext[j] != ext[j - 2] and dp[t - 1, j - 2] > best:
                best = dp[t - 1, j - 2]
                arg = 2
            dp[t, j] = best + np.log(max(probs[t, ext[j]], 1e-12))
            back[t, j] = arg
    s = S - 1
    if S > 1 and dp[T - 1, S - 2] > dp[T - 1, S - 1]:
        s = S - 2
    conf = np.zeros(L)
    for t in range(T - 1, -1, -1):
        if ext[s] != 0:
            k = (s - 1) // 2
            if probs[t, ext[s]] > conf[k]:
                conf[k] = probs[t, ext[s]]
        s -= back[t, s]
        if s < 0:
            break
    return conf


def decode(probs: np.ndarray, top_n: int = TOP_N) -> Recognition:
    """Top-N texts with confidences from one crop's (T, 37) plate-class probabilities.

    No candidates when the most likely reading is no text at all.
    """
    beams = beam_search(probs, top_n=top_n)
    if not beams or not beams[0][0]:
        return Recognition(candidates=())
    cands = []
    for labels, p in [b for b in beams if b[0]][:top_n]:
        text = "".join(CHARSET[c - 1] for c in labels)
        cands.append(TextCandidate(text=text, confidence=min(1.0, p),
                                   char_confidences=char_confidences(probs, labels)))
    return Recognition(candidates=tuple(cands))


# --------------------------------------------------------------------------- readers
class NetworkReader:
    """A recognition network plus the plate decoding; ``read`` is one batched forward pass."""

    def __init__(self, name: str, model, class_map: np.ndarray | None = None) -> None:
        self.name = name
        self.model = model.eval()
        self.class_map = class_map   # map a wider output (stock) onto the plate classes

    def probabilities(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per crop, the (T, 37) plate-class probabilities (padding columns trimmed)."""
        import torch

        norm = [normalize_crop(lines.as_one_line(_to_gray(c))) for c in crops]
        x = batch_tensor(norm)
        with torch.inference_mode():
            logits = self.model(x, None)
            probs = torch.softmax(logits.float(), dim=2).numpy()
        if self.class_map is not None:
            folded = np.zeros(probs.shape[:2] + (len(CHARSET) + 1,), np.float32)
            keep = self.class_map >= 0
            np.add.at(folded, (slice(None), slice(None), self.class_map[keep]), probs[:, :, keep])
            probs = folded / np.maximum(folded.sum(axis=2, keepdims=True), 1e-12)
        out = []
        for im, p in zip(norm, probs):
            t = max(1, min(p.shape[0], im.shape[1] // 4 - 1))
            out.append(p[:t])
        return out

    def read(self, crops: Sequence[np.ndarray]) -> list[Recognition]:
        if len(crops) == 0:
            return []
        return [decode(p) for p in self.probabilities(crops)]


_QUANT_WARNING = r"torch\.quantize_per_tensor.*deprecated"


def _quantize(model):
    """int8 dynamic quantisation of LSTM and Linear layers, as easyocr does for the stock model."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_QUANT_WARNING)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
    except Exception:  # pragma: no cover - backend without quantized kernels
        log.info("dynamic quantisation unavailable; running fp32")
        return model


def load_stock(quantize: bool = True) -> NetworkReader:
    """english_g2 through easyocr's own loader, offline, recogniser only."""
    import warnings

    import easyocr
    import easyocr_en_models

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUANT_WARNING)
        reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=easyocr_en_models.model_dir(),
                                download_enabled=False, detector=False, quantize=quantize, verbose=False)
    return NetworkReader("stock", reader.recognizer, class_map=stock_class_map())


def load_tuned(path: str | os.PathLike = TUNED_WEIGHTS, quantize: bool = True) -> NetworkReader:
    """The plate-tuned network from ``models/`` (FileNotFoundError if absent)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tuned plate model not found: {path}")
    model = build_network()
    model.load_state_dict(load_state_dict(path))
    model.eval()
    return NetworkReader("tuned", _quantize(model) if quantize else model)


_CACHE: dict[str, NetworkReader] = {}
_LOCK = threading.Lock()


def get_reader(kind: str = "auto") -> PlateReader:
    """The process-wide reader: ``"tuned"``, ``"stock"`` or ``"auto"`` (tuned if shipped, else stock)."""
    if kind not in ("auto", "tuned", "stock"):
        raise ValueError(f"unknown reader kind {kind!r}")
    with _LOCK:
        if kind in _CACHE:
            return _CACHE[kind]
        if kind == "auto":
            if TUNED_WEIGHTS.is_file():
                reader = _CACHE.get("tuned") or load_tuned()
                _CACHE["tuned"] = reader
            else:
                log.warning("tuned plate model %s is missing; falling back to stock easyocr english_g2",
                            TUNED_WEIGHTS)
                reader = _CACHE.get("stock") or load_stock()
                _CACHE["stock"] = reader
        elif kind == "tuned":
            reader = load_tuned()
        else:
            reader = load_stock()
        _CACHE[kind] = reader
        return reader


def warm_up() -> None:
    """Load the default reader and run it once (after a gunicorn fork, once per test session)."""
    t0 = time.perf_counter()
    reader = get_reader("auto")
    reader.read([np.full((32, 120), 200, np.uint8)])
    log.info("plate reader %s ready in %.0f ms", reader.name, (time.perf_counter() - t0) * 1000)
