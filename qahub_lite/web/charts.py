"""Charts drawn on the server as inline SVG: no chart library, no CDN, nothing for the browser
to run, so they work air-gapped, without JavaScript and under a strict Content-Security-Policy.

Colours come from CSS classes (dashboard.css), not inline styles, because the policy allows
only the stylesheet. Every point carries a <title> (the browser shows it as a tooltip) and
every chart an aria-label, so the numbers are there for a reader, not only the lines.
Every text that reaches the markup is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import msgspec
from markupsafe import Markup, escape


class Series(msgspec.Struct):
    name: str
    values: list[float | None]  # one per label; None leaves a gap
    css: str = "series-0"  # the CSS class that colours it


class StripItem(msgspec.Struct):
    status: str  # canonical status, or "PASS"/"FAIL" for gate verdicts
    title: str  # tooltip
    href: str | None = None


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ceiling(value: float, *, integer: bool = False) -> float:
    """The round number (1, 2, 2.5 or 5 times a power of ten) at or above `value`, so that the
    axis' quarter lines fall on readable values; a multiple of 4 for counts."""
    if value <= 0:
        return 4.0 if integer else 1.0
    if integer:
        return float(max(4, math.ceil(value / 4) * 4))
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def sparkline(values: Sequence[float | None], *, width: int = 120, height: int = 28, label: str = "") -> Markup:
    """A small line of values between 0 and 1 (pass rates), oldest first."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    aria = escape(label or "trend")
    if not points:
        return Markup(f'<svg class="spark empty" viewBox="0 0 {width} {height}" role="img" '
                      f'aria-label="{aria}: no data">'
                      f'<line x1="0" y1="{height / 2}" x2="{width}" y2="{height / 2}" class="axis"/></svg>')
    pad = 3
    step = (width - 2 * pad) / max(1, len(values) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad + i * step, pad + (1 - max(0.0, min(1.0, v))) * (height - 2 * pad)

    coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in (xy(i, v) for i, v in points))
    lx, ly = xy(*points[-1])
    last = points[-1][1]
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{aria}: latest {last * 100:.0f} %">'
        f'<polyline points="{coords}" class="spark-line"/>'
        f'<circle cx="{_fmt(lx)}" cy="{_fmt(ly)}" r="2.5" class="spark-dot"><title>{last * 100:.0f} %</title></circle>'
        "</svg>"
    )


def line_chart(
    series: Sequence[Series], labels: Sequence[str], *, title: str, y_max: float | None = None,
    y_format: Callable[[float], str] = _fmt, width: int = 720, height: int = 240, connect: bool = False,
    integer: bool = False,
) -> Markup:
    """Lines over evenly spaced labels (days, runs), with a y axis from 0 and a legend.
    A None value is a gap in the line, or, with `connect`, simply has no point of its own
    (days without runs on a trend: the line goes from one measured day to the next).
    Without `y_max` the axis ends at a round number above the largest value; `integer`
    (counts) keeps every grid line on a whole number."""
    left, right, top, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    seen = [v for s in series for v in s.values if v is not None]
    top_value = y_max if y_max is not None else nice_ceiling(max(seen) if seen else 1.0, integer=integer)
    n = len(labels)
    step = plot_w / max(1, n - 1)

    def x(i: int) -> float:
        return left + (i * step if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - (v / top_value) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 22 * ((len(series) + 2) // 3)}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">'
    ]
    for k in range(5):  # horizontal grid and y labels
        value = top_value * k / 4
        gy = y(value)
        parts.append(f'<line x1="{left}" y1="{_fmt(gy)}" x2="{width - right}" y2="{_fmt(gy)}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{_fmt(gy + 4)}" class="tick" text-anchor="end">'
                     f'{escape(y_format(value))}</text>')
    every = max(1, n // 8)  # at most ~8 x labels, the last always shown
    for i, label in enumerate(labels):
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text x="{_fmt(x(i))}" y="{height - 8}" class="tick" text-anchor="middle">{escape(label)}</text>'
            )
    if not seen:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="empty-note" '
                     'text-anchor="middle">no data in this range</text>')
    for s in series:
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(s.values):
            if v is None:
                if connect:
                    continue
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{_fmt(x(i))},{_fmt(y(v))}")
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) > 1:
                parts.append(f'<polyline points="{" ".join(seg)}" class="line {s.css}"/>')
        for i, v in enumerate(s.values):
            if v is not None:
                tip = f"{s.name} · {labels[i]}: {y_format(v)}"
                parts.append(
                    f'<circle cx="{_fmt(x(i))}" cy="{_fmt(y(v))}" r="3" class="point {s.css}">'
                    f'<title>{escape(tip)}</title></circle>'
                )
    for k, s in enumerate(series):  # legend under the plot, three per row
        lx = left + (k % 3) * 200
        ly = height + 10 + 22 * (k // 3)
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="14" height="4" class="legend {s.css}"/>')
        parts.append(f'<text x="{lx + 20}" y="{ly - 4}" class="legend-text">{escape(s.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def result_strip(items: Sequence[StripItem], *, title: str, cell: int = 14, gap: int = 3) -> Markup:
    """One square per result (or gate verdict), oldest left; a square links to its run."""
    width = max(cell, len(items) * (cell + gap) - gap)
    parts = [f'<svg class="strip" viewBox="0 0 {width} {cell}" width="{width}" height="{cell}" role="img" '
             f'aria-label="{escape(title)}">']
    for i, item in enumerate(items):
        rect = (f'<rect x="{i * (cell + gap)}" y="0" width="{cell}" height="{cell}" rx="2" '
                f'class="cell c-{escape(item.status.lower())}"><title>{escape(item.title)}</title></rect>')
        parts.append(f'<a href="{escape(item.href)}">{rect}</a>' if item.href else rect)
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bar(parts: Sequence[tuple[str, int]], *, title: str, width: int = 600, height: int = 12) -> Markup:
    """One horizontal bar split by (status, count): a run's outcome at a glance."""
    total = sum(n for _, n in parts)
    out = [f'<svg class="bar" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
           f'aria-label="{escape(title)}">']
    if total == 0:
        out.append(f'<rect x="0" y="0" width="{width}" height="{height}" class="cell c-none"/>')
    x = 0.0
    for status, n in parts:
        if n <= 0:
            continue
        w = width * n / total
        out.append(f'<rect x="{_fmt(x)}" y="0" width="{_fmt(w)}" height="{height}" '
                   f'class="cell c-{escape(status.lower())}">'
                   f'<title>{escape(status.lower())}: {n}</title></rect>')
        x += w
    out.append("</svg>")
    return Markup("".join(out))


def pass_rate(passed: int, failed: int, broken: int) -> float | None:
    """Passed over executed-and-finished (skipped and pending tests do not count either way)."""
    executed = passed + failed + broken
    return passed / executed if executed else None
