"""Inline SVG charts for the HTML report: a run timeline and a series over time. No script, no network."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from html import escape

Mark = tuple[datetime, str, str, int, str]  # a run: time, status, load type, run id, tooltip
STATUS_COLOURS = {"success": "#2e7d32", "failed": "#c62828", "running": "#f9a825", "rolled_back": "#6d4c41"}
OTHER = "#757575"
WIDTH, PAD = 640, 36
MAX_MARKS = 150  # more runs than this in a timeline are drawn as daily bars


def colour(status: str) -> str:
    return STATUS_COLOURS.get(status, OTHER)


def _x(moment: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    return PAD + (WIDTH - 2 * PAD) * max(0.0, min(1.0, (moment - start).total_seconds() / span))


def _axis(start: datetime, end: datetime, height: int) -> str:
    y = height - 14
    return (
        f'<line x1="{PAD}" y1="{y - 6}" x2="{WIDTH - PAD}" y2="{y - 6}" stroke="#bbb"/>'
        f'<text x="{PAD}" y="{y + 8}" font-size="10">{start:%Y-%m-%d}</text>'
        f'<text x="{WIDTH - PAD}" y="{y + 8}" font-size="10" text-anchor="end">{end:%Y-%m-%d %H:%M}</text>'
    )


def timeline(project: str, runs: Sequence[Mark], start: datetime, end: datetime) -> str:
    """One project's runs (time, status, load type, run id, tooltip) as marks on a time axis, full loads
    on the upper lane; past ``MAX_MARKS`` runs, stacked daily bars by status."""
    height = 90
    label = escape(f"Runs of {project}")
    parts = [
        f'<svg class="chart timeline" data-project="{escape(project)}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{label}"><title>{label}</title>'
    ]
    if len(runs) <= MAX_MARKS:
        parts.append('<text x="4" y="22" font-size="10">F</text><text x="4" y="52" font-size="10">I</text>')
        for at, status, load_type, _, tip in runs:
            y = 12 if load_type == "F" else 42
            parts.append(
                f'<rect class="run {escape(status)}" x="{_x(at, start, end) - 2:.1f}" y="{y}" width="4" height="22" '
                f'fill="{colour(status)}"><title>{escape(tip)}</title></rect>'
            )
    else:
        parts.append(_daily_bars(runs, start, end, height))
    parts.append(_axis(start, end, height))
    parts.append("</svg>")
    return "".join(parts)


def _daily_bars(runs: Sequence[Mark], start: datetime, end: datetime, height: int) -> str:
    days = Counter((at.date(), status) for at, status, *_ in runs)
    per_day = Counter(day for (day, _), n in days.items() for _ in range(n))
    top = max(per_day.values())
    span = max(1, (end.date() - start.date()).days + 1)
    bar = max(1.0, (WIDTH - 2 * PAD) / span - 1)
    out = []
    for day in sorted(per_day):
        x = _x(datetime.combine(day, datetime.min.time(), tzinfo=start.tzinfo), start, end)
        base = height - 20.0
        for status in sorted({s for d, s in days if d == day}):
            n = days[(day, status)]
            h = 60.0 * n / top
            base -= h
            out.append(
                f'<rect class="day {escape(status)}" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour(status)}"><title>{day} {escape(status)}: {n} runs</title></rect>'
            )
    return "".join(out)


def series(name: str, points: Sequence[tuple[datetime, float, bool, str]], unit: str) -> str:
    """Values of successive loads (time, value, flagged, tooltip) as a line with dots, evenly spaced;
    flagged dots are red and larger."""
    height = 120
    label = escape(f"{name} ({unit})")
    parts = [
        f'<svg class="chart series" data-series="{escape(name)}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
    ]
    if points:
        top = max(v for _, v, _, _ in points) or 1.0
        step = (WIDTH - 2 * PAD) / max(1, len(points) - 1)
        xy = [
            (PAD + (step * i if len(points) > 1 else (WIDTH - 2 * PAD) / 2), 16 + (height - 44) * (1 - v / top))
            for i, (_, v, _, _) in enumerate(points)
        ]
        parts.append(
            '<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            + '"/>'
        )
        for (x, y), (_, _, flagged, tip) in zip(xy, points, strict=True):
            style = 'r="5" fill="#c62828" class="dot anomaly"' if flagged else 'r="3" fill="#1565c0" class="dot"'
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" {style}><title>{escape(tip)}</title></circle>')
        parts.append(f'<text x="{PAD}" y="10" font-size="10">{escape(name)}: max {top:,.1f} {escape(unit)}</text>')
        parts.append(_axis(points[0][0], points[-1][0], height))
    else:
        parts.append(f'<text x="{WIDTH / 2}" y="50" font-size="12" text-anchor="middle">no data</text>')
    parts.append("</svg>")
    return "".join(parts)


def daily(points: Sequence[tuple[datetime, float, bool, str]], limit: int) -> list[tuple[datetime, float, bool, str]]:
    """At most about ``limit`` points: past it, one point per day (the day's largest value; flagged if any was)."""
    if len(points) <= limit:
        return list(points)
    days: dict[datetime, list[tuple[datetime, float, bool, str]]] = {}
    for p in points:
        day = p[0].replace(hour=12, minute=0, second=0, microsecond=0)
        days.setdefault(day, []).append(p)
    out = []
    for day, group in sorted(days.items()):
        top = max(v for _, v, _, _ in group)
        flagged = any(f for _, _, f, _ in group)
        out.append((day, top, flagged, f"{day:%Y-%m-%d}: {len(group)} loads, max {top:,.1f}"))
    return out
