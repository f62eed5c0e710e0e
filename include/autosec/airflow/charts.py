"""Chart geometry for the autosec pages: plain numbers in, SVG coordinates out.

The pages draw their charts as inline SVG (no script, no external asset, nothing a strict
Content-Security-Policy would block); the templates only place what this module computes.
Pure: no Airflow, no database, so it is tested with plain data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

SEVERITY_COLOURS = {
    "critical": "#b91c1c",
    "high": "#ea580c",
    "medium": "#ca8a04",
    "low": "#2563eb",
    "info": "#6b7280",
}


@dataclass(frozen=True)
class Frame:
    """Where the plot sits inside the SVG viewBox."""

    width: int = 720
    height: int = 220
    left: int = 48
    right: int = 12
    top: int = 12
    bottom: int = 28

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def baseline(self) -> float:
        return float(self.top + self.plot_height)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Shape:
    name: str
    colour: str
    points: str
    last_value: float | None = None


@dataclass(frozen=True)
class Chart:
    frame: Frame
    shapes: tuple[Shape, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    empty: bool


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def count_axis_top(value: float) -> float:
    """The top of an axis of counts: a nice number, at least 4, so the quarter ticks are
    whole numbers when the counts are small."""
    return max(nice_ceiling(value), 4.0)


def _number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _y_ticks(frame: Frame, top: float, percent: bool) -> tuple[Tick, ...]:
    ticks = []
    for i in range(5):
        value = top * i / 4
        y = frame.baseline - frame.plot_height * i / 4
        label = f"{value * 100:.0f}%" if percent else _number(value)
        ticks.append(Tick(round(y, 1), label))
    return tuple(ticks)


def _x(frame: Frame, index: int, count: int) -> float:
    if count <= 1:
        return frame.left + frame.plot_width / 2
    return frame.left + frame.plot_width * index / (count - 1)


def _x_ticks(frame: Frame, days: Sequence[date], wanted: int = 6) -> tuple[Tick, ...]:
    if not days:
        return ()
    step = max(1, math.ceil(len(days) / wanted))
    indexes = list(range(0, len(days), step))
    if indexes[-1] != len(days) - 1:
        indexes.append(len(days) - 1)
        if len(indexes) > 2 and indexes[-1] - indexes[-2] < step / 2:
            del indexes[-2]
    # The first and last labels sit inside the plot's edges, so none is cut off.
    last = len(days) - 1
    return tuple(
        Tick(
            round(_x(frame, i, len(days)), 1),
            days[i].strftime("%d %b"),
            "start" if i == 0 and last else "end" if i == last and last else "middle",
        )
        for i in indexes
    )


def _y(frame: Frame, value: float, top: float) -> float:
    return frame.baseline - frame.plot_height * (value / top)


def stacked_area(
    days: Sequence[date],
    series: Mapping[str, Sequence[float]],
    order: Sequence[str],
    colours: Mapping[str, str] = SEVERITY_COLOURS,
    frame: Frame | None = None,
) -> Chart:
    """One band per series, stacked bottom-up in ``order`` (the first name at the bottom)."""
    frame = frame or Frame()
    count = len(days)
    for name in order:
        if len(series.get(name, ())) != count:
            raise ValueError(f"series {name!r} has {len(series.get(name, ()))} values, not {count}")
    totals = [sum(series[name][i] for name in order) for i in range(count)]
    top = count_axis_top(max(totals, default=0))
    below = [0.0] * count
    shapes = []
    for name in order:
        above = [below[i] + series[name][i] for i in range(count)]
        upper = [f"{_x(frame, i, count):.1f},{_y(frame, above[i], top):.1f}" for i in range(count)]
        lower = [
            f"{_x(frame, i, count):.1f},{_y(frame, below[i], top):.1f}"
            for i in reversed(range(count))
        ]
        if count == 1:  # a single day: a thin bar instead of a zero-width band
            x = _x(frame, 0, 1)
            high, low = _y(frame, above[0], top), _y(frame, below[0], top)
            upper = [f"{x - 4:.1f},{high:.1f}", f"{x + 4:.1f},{high:.1f}"]
            lower = [f"{x + 4:.1f},{low:.1f}", f"{x - 4:.1f},{low:.1f}"]
        shapes.append(
            Shape(
                name,
                colours.get(name, "#6b7280"),
                " ".join(upper + lower),
                float(series[name][-1]) if count else None,
            )
        )
        below = above
    return Chart(
        frame,
        tuple(shapes),
        _y_ticks(frame, top, percent=False),
        _x_ticks(frame, days),
        empty=count == 0,
    )


def lines(
    days: Sequence[date],
    series: Mapping[str, Sequence[float | None]],
    colours: Mapping[str, str],
    frame: Frame | None = None,
    percent: bool = False,
) -> Chart:
    """One polyline per series; a None value breaks the line (no figure that day).

    With ``percent`` the values are ratios from 0 to 1 and the axis reads 0% to 100%.
    """
    frame = frame or Frame(height=180)
    count = len(days)
    values = [v for s in series.values() for v in s if v is not None]
    top = 1.0 if percent else count_axis_top(max(values, default=0))
    shapes = []
    for name, points in series.items():
        if len(points) != count:
            raise ValueError(f"series {name!r} has {len(points)} values, not {count}")
        segments: list[list[str]] = [[]]
        for i, value in enumerate(points):
            if value is None:
                segments.append([])
                continue
            segments[-1].append(f"{_x(frame, i, count):.1f},{_y(frame, float(value), top):.1f}")
        drawn = [" ".join(s) for s in segments if s]
        last = next((float(v) for v in reversed(points) if v is not None), None)
        for segment in drawn:
            shapes.append(Shape(name, colours.get(name, "#374151"), segment, last))
    return Chart(
        frame,
        tuple(shapes),
        _y_ticks(frame, top, percent=percent),
        _x_ticks(frame, days),
        empty=count == 0 or not values,
    )


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    width: float
    y: float
    text: str


def horizontal_bars(
    items: Sequence[tuple[str, float, str]], width: int = 320, row_height: int = 22
) -> tuple[Bar, ...]:
    """(label, value, text shown) -> bars scaled to the largest value, one row each."""
    top = max((value for _, value, _ in items), default=0) or 1
    return tuple(
        Bar(label, value, round(width * value / top, 1), i * row_height, text)
        for i, (label, value, text) in enumerate(items)
    )
