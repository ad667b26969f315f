"""Server-rendered charts: the geometry of each chart, computed here, drawn as SVG by the templates
(`charts.html`). Only numbers and escaped labels reach the SVG; no script and no chart library.

Each chart has a table behind it on its page, with the same numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM
    left: float = LEFT


@dataclass(frozen=True)
class Interval:
    label: str
    y: float
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class IntervalChart:
    title: str
    rows: list[Interval]
    x_ticks: list[Tick]
    zero: float | None
    width: int
    height: int
    left: float
    right: float


@dataclass(frozen=True)
class Line:
    name: str
    css: str
    points: str


@dataclass(frozen=True)
class LineChart:
    title: str
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: float = LEFT
    baseline: float = HEIGHT - BOTTOM


def _label(value: float) -> str:
    return f"{value:.3g}"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def histogram_chart(title: str, edges: Sequence[float], counts: Sequence[int | None]) -> BarChart:
    """Bars of `counts` between `edges`; a suppressed (None) count is drawn as no bar, labelled so."""
    values = [c or 0 for c in counts]
    top = max(values, default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    width = plot_w / max(len(values), 1)
    bars = []
    for i, count in enumerate(counts):
        h = 0.0 if count is None else plot_h * count / top
        label = f"{_label(edges[i])} to {_label(edges[i + 1])}: {'suppressed' if count is None else count}"
        bars.append(Bar(LEFT + i * width + 1, TOP + plot_h - h, max(width - 2, 1), h, label))
    ticks = [Tick(TOP + plot_h - plot_h * v / top, _label(v)) for v in _ticks(0, top)]
    return BarChart(title, bars, ticks)


def interval_chart(title: str, rows: Sequence[tuple[str, float, float, float]]) -> IntervalChart:
    """Each (label, estimate, lower, upper) as a point with its interval, on one shared x axis."""
    finite = [v for _, e, lo, hi in rows for v in (e, lo, hi) if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1
    left, right, row_h = 160.0, WIDTH - RIGHT - 8.0, 26.0
    height = int(TOP + row_h * len(rows) + BOTTOM)

    def x(v: float) -> float:
        return left + (right - left) * (v - low) / (high - low) if math.isfinite(v) else left

    intervals = [
        Interval(name, TOP + row_h * (i + 0.5), x(e), x(lo), x(hi))
        for i, (name, e, lo, hi) in enumerate(rows)
    ]
    ticks = [Tick(x(v), _label(v)) for v in _ticks(low, high)]
    return IntervalChart(title, intervals, ticks, x(0.0), WIDTH, height, left, right)


def line_chart(
    title: str,
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float | None]]],
    y_range: tuple[float, float] | None = None,
) -> LineChart:
    """One polyline per named series over the shared `xs` (at most two series, styled a and b); the
    y axis spans the values, or `y_range` when given (values outside it are drawn at its edge)."""
    values = [v for _, ys in series for v in ys if v is not None and math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if y_range is not None:
        low, high = y_range
        values = [min(max(v, low), high) for v in values]
    if high == low:
        high = low + 1
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_high == x_low:
        x_high = x_low + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + plot_w * (v - x_low) / (x_high - x_low)

    def py(v: float) -> float:
        v = min(max(v, low), high)
        return TOP + plot_h - plot_h * (v - low) / (high - low)

    lines = []
    for (name, ys), css in zip(series, ("line-a", "line-b"), strict=False):
        points = " ".join(
            f"{px(x):.1f},{py(y):.1f}"
            for x, y in zip(xs, ys, strict=False)
            if y is not None and math.isfinite(y)
        )
        lines.append(Line(name, css, points))
    x_ticks = [Tick(px(v), _label(v)) for v in sorted(set(xs))[:12]]
    y_ticks = [Tick(py(v), _label(v)) for v in _ticks(low, high)]
    return LineChart(title, lines, x_ticks, y_ticks)
