"""Plate strings: normalisation and look-alike characters.

Pure functions shared by the recogniser (position-wise correction), the store
(fuzzy index) and the matcher (fuzzy suggestions are never releases).
"""
from __future__ import annotations

import re
from functools import lru_cache

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_PLATE_LEN = 10
_STRIP = re.compile(r"[\s\-._·•]+")
_VALID = re.compile(r"[A-Z0-9]{1,%d}" % MAX_PLATE_LEN)

# Characters an OCR engine (or a tired human) confuses on plates. Each group folds
# to its first member for the fuzzy index.
CONFUSION_GROUPS: tuple[str, ...] = ("0ODQ", "1IL", "2Z", "4A", "5S", "6G", "7T", "8B", "UV", "MN")
_FOLD = {ch: group[0] for group in CONFUSION_GROUPS for ch in group}
_FOLD_TABLE = str.maketrans(_FOLD)


class PlateError(ValueError):
    """A plate string that cannot be a plate."""


_ASCII_LETTERS = re.compile(r"[a-z]")
ECHO_MAX = 24  # how much of a refused plate an error message repeats


def normalize(text: str) -> str:
    """Upper case, with spaces, dashes and dots removed. No validation.

    Only ASCII letters are upper-cased: ``str.upper`` would fold ``ß``, ``ı``, ``ſ`` or ``ﬁ``
    into ASCII plates, so a string no camera printed could pass for one.
    """
    return _ASCII_LETTERS.sub(lambda m: m.group().upper(), _STRIP.sub("", text or ""))


def _echo(text: str) -> str:
    """A refused value as an error message may show it: quoted, and cut short."""
    return repr(text[:ECHO_MAX]) + ("..." if len(text) > ECHO_MAX else "")


def validate(text: str) -> str:
    """Normalise and check: 1-10 characters from A-Z and 0-9 (ASCII only), else ``PlateError``."""
    plate = normalize(text)
    if not _VALID.fullmatch(plate):
        bad = sorted({c for c in plate if c not in ALPHABET})
        if bad:
            shown = "".join(bad[:10]) + ("..." if len(bad) > 10 else "")
            raise PlateError(f"plate {_echo(text)} has illegal characters: {shown!r} (plates are A-Z and 0-9)")
        raise PlateError(f"plate {_echo(text)} must have 1 to {MAX_PLATE_LEN} characters")
    return plate


def fold(plate: str) -> str:
    """Map every look-alike character to its group's representative."""
    return plate.translate(_FOLD_TABLE)


def are_lookalikes(a: str, b: str) -> bool:
    return a == b or _FOLD.get(a, a) == _FOLD.get(b, b)


@lru_cache(maxsize=4096)
def index_keys(plate: str) -> frozenset[str]:
    """The folded plate plus every one-deletion variant of it.

    Two plates share a key iff they are equal up to look-alikes, differ by one
    inserted/deleted character, or by one substitution (after folding). That is
    the symmetric-deletion trick: the fuzzy search becomes exact index probes.
    """
    folded = fold(plate)
    keys = {folded}
    if len(folded) > 1:
        keys.update(folded[:i] + folded[i + 1:] for i in range(len(folded)))
    return frozenset(keys)


LOOKALIKE_COST = 0.25


def distance(a: str, b: str) -> float:
    """Edit distance where swapping look-alike characters costs 0.25 and any other edit 1."""
    if a == b:
        return 0.0
    prev = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        cur = [float(i)] + [0.0] * len(b)
        for j, cb in enumerate(b, 1):
            sub = 0.0 if ca == cb else (LOOKALIKE_COST if are_lookalikes(ca, cb) else 1.0)
            cur[j] = min(prev[j] + 1.0, cur[j - 1] + 1.0, prev[j - 1] + sub)
        prev = cur
    return prev[-1]
