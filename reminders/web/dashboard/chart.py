"""The pain chart of a patient's page: answers of a 0-10 measure over time, as SVG drawn here.

Pure: points in, markup out. No script, no style attribute (the page's Content-Security-Policy
allows neither), only presentation attributes; every text is escaped. Each point carries a
``<title>`` (its date and score) so a screen reader and a hover both tell it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape
from typing import Final

#: Drawing size in SVG units (the image scales to the page's width).
WIDTH: Final = 640
HEIGHT: Final = 240
#: Room for the axis labels.
LEFT, RIGHT, TOP, BOTTOM = 40, 16, 16, 36
#: The scale's range.
LOW, HIGH = 0, 10


@dataclass(frozen=True, slots=True)
class Point:
    """One answer."""

    #: When it was answered.
    at: datetime
    #: The score, 0 to 10.
    value: int


def _x(at: datetime, first: datetime, last: datetime) -> float:
    span = (last - first).total_seconds()
    inner = WIDTH - LEFT - RIGHT
    if span <= 0:
        return LEFT + inner / 2
    return LEFT + inner * (at - first).total_seconds() / span


def _y(value: float) -> float:
    inner = HEIGHT - TOP - BOTTOM
    return TOP + inner * (HIGH - value) / (HIGH - LOW)


def svg(
    points: Sequence[Point], zone: tzinfo, *, title: str, lines: Sequence[tuple[int, str]] = ()
) -> str:
    """An SVG line chart of ``points`` (oldest first) on the 0-10 scale, dates in ``zone``.

    ``lines`` are horizontal marks, e.g. ``[(8, "urgent"), (6, "review")]``.
    """
    ordered = sorted(points, key=lambda p: p.at)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for value in (0, 5, 10):
        y = _y(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#57606a">{value}</text>'
        )
    for value, label in lines:
        y = _y(value)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#a40e26" stroke-width="1" stroke-dasharray="4 4"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#a40e26">{escape(label)}</text>'
        )
    if not ordered:
        parts.append(
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" '
            'font-size="14" fill="#57606a">No answers yet</text></svg>'
        )
        return "".join(parts)
    first, last = ordered[0].at, ordered[-1].at
    xy = [(_x(p.at, first, last), _y(p.value)) for p in ordered]
    if len(xy) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1f4e79" stroke-width="2"/>')
    for p, (x, y) in zip(ordered, xy, strict=True):
        when = p.at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#1f4e79">'
            f"<title>{escape(when)}: {p.value}</title></circle>"
        )
    for p, x in ((ordered[0], xy[0][0]), (ordered[-1], xy[-1][0])):
        anchor = "start" if p is ordered[0] and len(ordered) > 1 else "end"
        if len(ordered) == 1:
            anchor = "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 12}" text-anchor="{anchor}" font-size="12" '
            f'fill="#57606a">{p.at.astimezone(zone):%b %d}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
