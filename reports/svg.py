"""Charts as inline SVG, drawn in Python: no script, no library, nothing fetched.

Each function returns a ``markupsafe.Markup`` SVG element to place in a page. Every
label is escaped (department and type names come from source systems), and every bar
segment and point carries a ``<title>`` with its label and number, so a reader who
hovers sees the exact figure; the pages print the same numbers in a table under each
chart. Colours are presentation attributes (``fill``), not style attributes, so a page
needs no inline styles.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["PALETTE", "colour", "line_chart", "stacked_bars", "swatch"]

PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)
"""Tableau 10: distinguishable, and readable for the common colour-vision deficiencies."""

_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 28, 14, 46


def colour(index: int) -> str:
    """The colour of the ``index``-th series (the palette repeats after ten)."""
    return PALETTE[index % len(PALETTE)]


def swatch(index: int) -> Markup:
    """A small square of the series' colour, for a legend."""
    return Markup('<svg class="swatch" width="12" height="12" aria-hidden="true">'
                  '<rect width="12" height="12" fill="{}"/></svg>').format(colour(index))


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _scale_top(highest: float) -> float:
    """A round number at or above ``highest`` for the y axis (1, 2, 5 x 10^n)."""
    if highest <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(highest))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= highest)


def _count_top(highest: int) -> int:
    """A top for a y axis of counts whose four gridlines all fall on whole numbers (4, 8, 12, 20, 40...)."""
    magnitude = 1
    while True:
        for step in (1, 2, 3, 5):
            if 4 * step * magnitude >= highest:
                return 4 * step * magnitude
        magnitude *= 10


def _frame(width: int, height: int, title: str, top: float, unit: str) -> list[str]:
    """The SVG's opening, its accessible title and the y axis with four gridlines."""
    plot_height = height - _TOP - _BOTTOM
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for step in range(5):
        value = top * step / 4
        y = _TOP + plot_height - plot_height * step / 4
        parts.append(f'<line x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>')
        parts.append(f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                     f"{_number(round(value, 2))}</text>")
    if unit:
        parts.append(f'<text x="4" y="{_TOP - 4}" class="axis">{escape(unit)}</text>')
    return parts


def _x_labels(labels: Sequence[str], centres: Sequence[float], height: int) -> list[str]:
    """Bucket labels under the plot, thinned to about twelve so they never overlap."""
    every = max(1, math.ceil(len(labels) / 12))
    return [
        f'<text x="{x:.1f}" y="{height - _BOTTOM + 16}" text-anchor="middle" class="axis">{escape(label)}</text>'
        for index, (label, x) in enumerate(zip(labels, centres, strict=True)) if index % every == 0
    ]


def stacked_bars(
    labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], *, title: str, unit: str = "",
    width: int = 760, height: int = 260,
) -> Markup:
    """One bar per label, stacked from the series in order (the first at the bottom).

    Args:
        labels: the bars' names (buckets), left to right.
        series: (name, one value per label); the i-th series gets ``colour(i)``.
        title: what the chart shows (its accessible name).
        unit: what the y axis counts.
    """
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    top = _count_top(max(totals, default=0))
    plot_width, plot_height = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    slot = plot_width / max(len(labels), 1)
    bar = max(slot * 0.75, 1)
    parts = _frame(width, height, title, top, unit)
    centres = []
    for i, label in enumerate(labels):
        x = _LEFT + slot * i + (slot - bar) / 2
        centres.append(x + bar / 2)
        base: float = _TOP + plot_height
        for index, (name, values) in enumerate(series):
            value = values[i]
            if not value:
                continue
            size = plot_height * value / top
            base -= size
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{size:.1f}" fill="{colour(index)}">'
                f"<title>{escape(label)} · {escape(name)}: {value}</title></rect>"
            )
        if totals[i] and len(labels) <= 26:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{base - 3:.1f}" text-anchor="middle" class="total">'
                         f"{totals[i]}</text>")
    parts += _x_labels(labels, centres, height)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, title: str, unit: str = "",
    width: int = 760, height: int = 240,
) -> Markup:
    """One line per series over the labels; a None value leaves a gap (no data in that bucket)."""
    values = [v for _, points in series for v in points if v is not None]
    top = _scale_top(max(values, default=0))
    plot_width, plot_height = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    slot = plot_width / max(len(labels), 1)
    centres = [_LEFT + slot * (i + 0.5) for i in range(len(labels))]
    parts = _frame(width, height, title, top, unit)
    for index, (name, points) in enumerate(series):
        runs: list[list[str]] = [[]]
        for i, value in enumerate(points):
            if value is None:
                runs.append([])
                continue
            runs[-1].append(f"{centres[i]:.1f},{_TOP + plot_height - plot_height * value / top:.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour(index)}" '
                             'stroke-width="2"/>')
        for i, value in enumerate(points):
            if value is None:
                continue
            y = _TOP + plot_height - plot_height * value / top
            parts.append(f'<circle cx="{centres[i]:.1f}" cy="{y:.1f}" r="3" fill="{colour(index)}">'
                         f"<title>{escape(labels[i])} · {escape(name)}: {_number(value)}</title></circle>")
    parts += _x_labels(labels, centres, height)
    parts.append("</svg>")
    return Markup("".join(parts))
