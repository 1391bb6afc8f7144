"""Server-side SVG charts: geometry computed here, drawn by a template with plain SVG elements.

No chart library and no script, so the charts render offline and under a strict CSP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    x: float
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    top: int
    plot_width: float
    plot_height: float
    baseline: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[XLabel, ...]
    empty: bool


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``target_ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if mult * power >= raw:
            return mult * power
    return 10 * power


def bar_chart(points: Sequence[tuple[str, Decimal, Decimal]], currency: str, *, width: int = 1000,
              height: int = 260) -> BarChart:
    """``(label, positive, negative)`` per period: positive bars above the axis (takings), negative below (refunds)."""
    left, right, top, bottom = 72, 12, 12, 34
    pw, ph = width - left - right, height - top - bottom
    hi = max([float(p) for _, p, _ in points] + [0.0])
    lo = min([float(n) for _, _, n in points] + [0.0])
    empty = hi == 0 and lo == 0
    step = nice_step((hi - lo) or 1.0)
    top_v = math.ceil(hi / step) * step if hi > 0 else 0.0
    bot_v = math.floor(lo / step) * step if lo < 0 else 0.0
    if top_v == bot_v:
        top_v = step
    scale = ph / (top_v - bot_v)
    baseline = top + top_v * scale
    n = max(len(points), 1)
    slot = pw / n
    bar_w = max(min(slot * 0.7, 48), 1.5)
    bars: list[Bar] = []
    labels: list[XLabel] = []
    label_px = 7.2 * max((len(label) for label, _, _ in points), default=1) + 12  # ~12 px font
    every = max(1, math.ceil(label_px / slot))
    for i, (label, pos, neg) in enumerate(points):
        x = left + i * slot + (slot - bar_w) / 2
        if pos:
            h = float(pos) * scale
            bars.append(Bar(round(x, 1), round(baseline - h, 1), round(bar_w, 1), round(h, 1), "bar-pos",
                            f"{label}: {pos:,} {currency} taken"))
        if neg:
            h = -float(neg) * scale
            bars.append(Bar(round(x, 1), round(baseline, 1), round(bar_w, 1), round(h, 1), "bar-neg",
                            f"{label}: {neg:,} {currency} refunded"))
        if i % every == 0:
            labels.append(XLabel(round(left + i * slot + slot / 2, 1), label))
    ticks = []
    v = bot_v
    while v <= top_v + step / 2:
        ticks.append(Tick(round(baseline - v * scale, 1), f"{v:,.0f}" if step >= 1 else f"{v:,.2f}"))
        v += step
    return BarChart(width, height, left, top, pw, ph, round(baseline, 1), tuple(bars), tuple(ticks), tuple(labels),
                    empty)
