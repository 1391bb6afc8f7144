"""Region plate formats: patterns, look-alike correction and candidate scoring.

Patterns use OpenALPR's notation: ``@`` a letter, ``#`` a digit, ``?`` either.
Where a pattern demands a letter and the recogniser gave a digit (or the other
way round) the character is swapped for its look-alike (0->O, 8->B, ...), at a
cost. A candidate's score combines the recogniser's confidence with how well
(and how cheaply) it fits one of the region's formats.

A swap costs more the surer the recogniser was of the character it replaces (when the
caller passes per-character confidences): a region's list of formats is never complete
(thirty-odd European countries, each with several), and a plate of a format not listed,
read with every character certain, must not be bent into a listed one. An unsure
character next to a sure format is what the swap is for.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Optional, Sequence, Union

from ..plates import normalize

TO_LETTER = {"0": "O", "1": "I", "2": "Z", "4": "A", "5": "S", "6": "G", "7": "T", "8": "B"}
TO_DIGIT = {"O": "0", "D": "0", "Q": "0", "U": "0", "I": "1", "L": "1", "J": "1", "Z": "2", "A": "4",
            "S": "5", "G": "6", "T": "7", "B": "8"}


@dataclass(frozen=True)
class Format:
    name: str
    pattern: str  # fixed length, over @ # ?
    strict: bool  # correct look-alikes to fit (True) or only reward a fit (False)


def _expand(name: str, spec: str, strict: bool = True) -> list[Format]:
    """``@{1,3}`` style counts expanded to fixed-length patterns."""
    import re

    parts = re.findall(r"([@#?])(?:\{(\d+),(\d+)\})?", spec)
    seqs = [""]
    for sym, lo, hi in parts:
        counts = range(int(lo), int(hi) + 1) if lo else [1]
        seqs = [s + sym * n for s in seqs for n in counts]
    return [Format(name, s, strict) for s in seqs]


FREE_FORM = "us-generic"  # the free-form (vanity) pattern: any 2-8 characters


def _build() -> dict[str, tuple[Format, ...]]:
    us = [Format(FREE_FORM, "?" * n, False) for n in range(2, 9)]
    # Common state serials: rewarded when they fit, never forced (vanity plates exist).
    for p in ("@@@####", "#@@@###", "@@@###", "###@@@", "##@@@##", "@@#####", "#@@####", "###@@@#", "@@@#@##",
              "@@##@@", "@###@@@", "@@@@###", "###@###"):
        us.append(Format("us-common", p, False))
    eu: list[Format] = []
    eu += _expand("de", "@{1,3}@{1,2}#{1,4}")
    eu += _expand("fr-it", "@@###@@")
    eu += _expand("es", "####@@@")
    eu += _expand("uk", "@@##@@@")
    eu += _expand("pl", "@@#####") + _expand("pl", "@@@####") + _expand("pl", "@@####@")
    eu += _expand("nl", "@@##@@") + _expand("nl", "##@@@#") + _expand("nl", "#@@@##") + _expand("nl", "@@@##@")
    eu += _expand("nl", "#@@###") + _expand("nl", "@###@@") + _expand("nl", "@@@#@@") + _expand("nl", "##@@##")
    eu += _expand("be", "#@@@###") + _expand("pt", "@@##@@") + _expand("pt", "##@@##")
    eu += _expand("at", "@{1,2}#{3,5}@{1,2}") + _expand("cz", "#@#####") + _expand("cz", "#@@####")
    eu += _expand("se-no-dk", "@@@##?") + _expand("se-no-dk", "@@#####") + _expand("ch", "@@#{1,6}")
    br = _expand("br", "@@@####") + _expand("mercosur", "@@@#@##")
    unique = {}
    for region, fmts in (("us", us), ("eu", eu), ("br", br)):
        seen: dict[tuple[str, bool], Format] = {}
        for f in fmts:
            seen.setdefault((f.pattern, f.strict), f)
        unique[region] = tuple(seen.values())
    return unique


FORMATS: dict[str, tuple[Format, ...]] = _build()
REGIONS = tuple(FORMATS)


def formats_for(region: str) -> tuple[Format, ...]:
    try:
        return FORMATS[region]
    except KeyError:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(REGIONS)}") from None


@lru_cache(maxsize=65536)
def fit(text: str, pattern: str) -> Optional[tuple[str, int]]:
    """``text`` corrected to ``pattern`` and the number of swaps, or None if it cannot fit."""
    if len(text) != len(pattern):
        return None
    out = []
    swaps = 0
    for ch, sym in zip(text, pattern):
        if sym == "?" or (sym == "@" and ch.isalpha()) or (sym == "#" and ch.isdigit()):
            out.append(ch)
        elif sym == "@" and ch in TO_LETTER:
            out.append(TO_LETTER[ch])
            swaps += 1
        elif sym == "#" and ch in TO_DIGIT:
            out.append(TO_DIGIT[ch])
            swaps += 1
        else:
            return None
    return "".join(out), swaps


@dataclass(frozen=True)
class Scored:
    text: str
    score: float
    confidence: float
    format: Optional[str]
    swaps: int


SWAP_PENALTY = 0.08
# Per swapped character read at confidence c: SWAP_CONFIDENCE_COST * (c - SWAP_FREE_BELOW) on
# top of SWAP_PENALTY when c is above SWAP_FREE_BELOW. An unsure character (c <= 0.4) costs the
# flat penalty as it always has; above c ~ 0.87 a swap costs more than fitting gains
# (FIT_BONUS + NO_FIT_PENALTY), so a sure character is never bent. Chosen on the training split
# of the crops (linear from 0 with 0.2-0.6, from 0.3 / 0.4 / 0.5 with 0.8-1.2: all within three
# crops of 908 on BR and two-row EU; this one best), never on validation.
SWAP_CONFIDENCE_COST = 0.9
SWAP_FREE_BELOW = 0.4
FIT_BONUS = {True: 0.15, False: 0.05}
NO_FIT_PENALTY = 0.35
# Issued plates almost always carry a digit; an all-letter reading is far likelier to be
# a state name, a slogan or a dealer frame than a vanity plate. Penalised, never refused.
NO_DIGIT_PENALTY = 0.25


Reading = Union[tuple[str, float], tuple[str, float, Sequence[float]]]


def swap_cost(text: str, corrected: str, char_confidences: Optional[Sequence[float]] = None) -> float:
    """What bending ``text`` into ``corrected`` costs: SWAP_PENALTY per swapped character,
    plus SWAP_CONFIDENCE_COST times the recogniser's confidence above SWAP_FREE_BELOW in each
    character replaced (when the per-character confidences are known and line up with ``text``)."""
    swapped = [i for i, (a, b) in enumerate(zip(text, corrected)) if a != b]
    cost = SWAP_PENALTY * len(swapped)
    if char_confidences is not None and len(char_confidences) == len(text):
        cost += SWAP_CONFIDENCE_COST * sum(max(0.0, min(1.0, float(char_confidences[i])) - SWAP_FREE_BELOW)
                                           for i in swapped)
    return cost


def score_candidates(candidates: Iterable[Reading], region: str, *, keep: int = 5) -> list[Scored]:
    """Rank recogniser readings for ``region``: corrected to the best-fitting format,
    then scored by confidence, format fit, and the cost of the look-alike swaps.
    A reading is ``(text, confidence)`` or ``(text, confidence, per-character confidences)``."""
    fmts = formats_for(region)
    best: dict[str, Scored] = {}
    for reading in candidates:
        raw, conf = reading[0], reading[1]
        char_confs = reading[2] if len(reading) > 2 else None
        text = normalize(raw)
        if not text:
            continue
        options: list[Scored] = []
        for f in fmts:
            if f.strict:
                fitted = fit(text, f.pattern)
                if fitted is None:
                    continue
                corrected, swaps = fitted
            else:
                if fit(text, f.pattern) is None or fit(text, f.pattern)[1] > 0:
                    continue
                corrected, swaps = text, 0
            options.append(Scored(corrected, conf + FIT_BONUS[f.strict] * (f.name != FREE_FORM) -
                                  swap_cost(text, corrected, char_confs), conf, f.name, swaps))
        # the reading as it stands, fitting nothing: wins over a fit whose swaps cost more
        options.append(Scored(text, conf - NO_FIT_PENALTY, conf, None, 0))
        top = max(options, key=lambda s: s.score)
        if not any(ch.isdigit() for ch in top.text):
            top = Scored(top.text, top.score - NO_DIGIT_PENALTY, top.confidence, top.format, top.swaps)
        if top.text not in best or best[top.text].score < top.score:
            best[top.text] = top
    return sorted(best.values(), key=lambda s: -s.score)[:keep]


def matches_region(text: str, region: str) -> bool:
    """Whether ``text`` fits a strict format of ``region`` without any swap (or any format for us)."""
    for f in formats_for(region):
        fitted = fit(text, f.pattern)
        if fitted is not None and fitted[1] == 0:
            return True
    return False


def correct(text: str, region: str) -> str:
    """The best-fitting correction of a single reading (convenience for callers with one string)."""
    ranked = score_candidates([(text, 1.0)], region, keep=1)
    return ranked[0].text if ranked else normalize(text)


def vote(readings: Sequence[tuple[str, Sequence[float]]]) -> Optional[tuple[str, tuple[float, ...]]]:
    """Per-character vote across frames of one vehicle.

    ``readings`` are (text, per-character confidences). Readings of the most common
    length (by total confidence) vote position by position, weighted by confidence.
    """
    if not readings:
        return None
    by_len: dict[int, float] = {}
    for text, confs in readings:
        if text:
            by_len[len(text)] = by_len.get(len(text), 0.0) + (sum(confs) / max(len(confs), 1))
    if not by_len:
        return None
    length = max(by_len, key=lambda n: by_len[n])
    same = [(t, c) for t, c in readings if len(t) == length]
    chars: list[str] = []
    confs: list[float] = []
    for i in range(length):
        tally: dict[str, float] = {}
        for text, cs in same:
            w = cs[i] if i < len(cs) else 0.5
            tally[text[i]] = tally.get(text[i], 0.0) + w
        ch = max(tally, key=lambda k: tally[k])
        chars.append(ch)
        confs.append(tally[ch] / max(sum(tally.values()), 1e-9) * max(
            (cs[i] if i < len(cs) else 0.5) for t, cs in same if t[i] == ch))
    return "".join(chars), tuple(confs)


def fit_class(text: str, regions: Sequence[str]) -> str:
    """How ``text`` fits the plates of ``regions``, as it stands (no look-alike swaps):
    ``serial`` (a regular format of one of them), ``free`` (only the free-form vanity
    pattern) or ``none``. The gate sends an unknown vehicle whose read is ``none`` to an
    attendant, and asks more confidence of a ``free`` one."""
    found = "none"
    for region in regions:
        for f in formats_for(region):
            fitted = fit(text, f.pattern)
            if fitted is None or fitted[1]:
                continue
            if f.name != FREE_FORM:
                return "serial"
            found = "free"
    return found
