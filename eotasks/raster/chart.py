"""A picture of a time series: per index, the average with the q1-q3 band, by date (SVG).

Written by hand rather than with Matplotlib: every served flow run is a fresh process, where
importing Matplotlib and drawing costs about a second; this costs milliseconds, and the Prefect UI
and browsers show SVG as they show PNG.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

WIDTH, PANEL_H, LEFT, RIGHT, TOP, BOTTOM = 720, 200, 56, 16, 28, 36


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = (hi - lo) / (count - 1) if hi > lo else 1.0
    return [lo + i * step for i in range(count)]


def timeseries_svg(answer: dict[str, Any], items: list[str]) -> bytes:
    rows = answer["result"]
    height = TOP + len(items) * (PANEL_H + BOTTOM)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-size="13">{len(rows)} scenes, {len(answer["errors"])} left out</text>',
    ]
    dates = [dt.date.fromisoformat(r["date"]) for r in rows]
    d0 = min(dates).toordinal() if dates else 0
    d1 = max(dates).toordinal() if dates else 1
    span = max(d1 - d0, 1)
    plot_w = WIDTH - LEFT - RIGHT

    def x(d: dt.date) -> float:
        return LEFT + (d.toordinal() - d0) / span * plot_w

    for p, item in enumerate(items):
        stats = [r["indexes"][item] if "indexes" in r else r for r in rows]
        top = TOP + p * (PANEL_H + BOTTOM)
        lo = min((s["q1"] for s in stats), default=0.0)
        hi = max((s["q3"] for s in stats), default=1.0)
        lo, hi = (lo - 0.05, hi + 0.05) if hi > lo else (lo - 0.5, hi + 0.5)

        def y(v: float, top: float = top, lo: float = lo, hi: float = hi) -> float:
            return top + PANEL_H - (v - lo) / (hi - lo) * PANEL_H

        parts.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#999"/>')
        for t in _ticks(lo, hi):
            parts.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
                f'<text x="{LEFT - 4}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>'
            )
        parts.append(
            f'<text x="12" y="{top + PANEL_H / 2}" transform="rotate(-90 12 {top + PANEL_H / 2})" '
            f'text-anchor="middle">{escape(item)}</text>'
        )
        if stats:
            band = [f"{x(d):.1f},{y(s['q3']):.1f}" for d, s in zip(dates, stats, strict=True)]
            band += [f"{x(d):.1f},{y(s['q1']):.1f}" for d, s in reversed(list(zip(dates, stats, strict=True)))]
            parts.append(f'<polygon points="{" ".join(band)}" fill="#1f77b4" fill-opacity="0.25" stroke="none"/>')
            line = " ".join(f"{x(d):.1f},{y(s['average']):.1f}" for d, s in zip(dates, stats, strict=True))
            parts.append(f'<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
            parts += [
                f'<circle cx="{x(d):.1f}" cy="{y(s["average"]):.1f}" r="2.5" fill="#1f77b4"/>'
                for d, s in zip(dates, stats, strict=True)
            ]
        months = sorted({dt.date(d.year, d.month, 1) for d in dates})
        for m in months:
            if d0 <= m.toordinal() <= d1:
                label = f"{m:%b %Y}" if m.month == 1 or m == months[0] else f"{m:%b}"
                parts.append(f'<text x="{x(m):.1f}" y="{top + PANEL_H + 14}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="18" text-anchor="end" fill="#1f77b4">average, q1-q3 band</text></svg>')
    return "\n".join(parts).encode()
