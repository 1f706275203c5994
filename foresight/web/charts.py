"""Charts as inline SVG, rendered on the server: no script, no build step, readable by screen readers.

Pure functions from numbers to markup. Every chart carries ``role="img"`` and a text description,
and the numbers it shows are also on the page as text (tables or labels) for anyone who cannot see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

__all__ = ["bar_chart", "line_chart"]

#: Colour-blind-safe series colours (Okabe–Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")


def line_chart(points: Sequence[tuple[datetime, float]], *, label: str, width: int = 420, height: int = 140,
               unit: str = "") -> Markup:
    """A line over time with its range marked; ``label`` names it for assistive technology."""
    if len(points) < 2:
        return Markup('<p class="muted">{}: not enough readings for a trend yet.</p>').format(label)
    pad_l, pad_r, pad_t, pad_b = 48, 8, 18, 22
    xs = [t.timestamp() for t, _ in points]
    ys = [v for _, v in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    span_x = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return pad_l + (x - x0) / span_x * (width - pad_l - pad_r)

    def py(y: float) -> float:
        return pad_t + (1 - (y - y0) / (y1 - y0)) * (height - pad_t - pad_b)

    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
    first, last = points[0], points[-1]
    desc = (f"{label}: {len(points)} readings from {first[0]:%d %b %H:%M} to {last[0]:%d %b %H:%M}, "
            f"between {min(ys):g} and {max(ys):g}{unit}, last {last[1]:g}{unit}")
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(desc)}">'
        f"<title>{escape(desc)}</title>"
        f'<text x="{pad_l}" y="12" class="chart-title">{escape(label)}</text>'
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" class="axis"/>'
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" class="axis"/>'
        f'<text x="{pad_l - 4}" y="{py(y1) + 4:.1f}" class="tick" text-anchor="end">{y1:.4g}</text>'
        f'<text x="{pad_l - 4}" y="{py(y0) + 4:.1f}" class="tick" text-anchor="end">{y0:.4g}</text>'
        f'<text x="{pad_l}" y="{height - 6}" class="tick">{first[0]:%d %b %H:%M}</text>'
        f'<text x="{width - pad_r}" y="{height - 6}" class="tick" text-anchor="end">{last[0]:%d %b %H:%M}</text>'
        f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>'
        f'<circle cx="{px(xs[-1]):.1f}" cy="{py(ys[-1]):.1f}" r="3" fill="{PALETTE[0]}"/>'
        "</svg>")


def bar_chart(rows: Sequence[tuple[str, Sequence[int]]], *, series: Sequence[str], label: str,
              width: int = 640, height: int = 180) -> Markup:
    """Stacked bars, one per row (e.g. one per day), one colour per series, with a legend."""
    pad_l, pad_r, pad_t, pad_b = 32, 8, 26, 22
    top = max((sum(v) for _, v in rows), default=0) or 1
    n = max(len(rows), 1)
    slot = (width - pad_l - pad_r) / n
    bar_w = max(2.0, slot * 0.7)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(label)}"><title>{escape(label)}</title>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" class="axis"/>',
             f'<text x="{pad_l - 4}" y="{pad_t + 4}" class="tick" text-anchor="end">{top}</text>',
             f'<text x="{pad_l - 4}" y="{height - pad_b}" class="tick" text-anchor="end">0</text>']
    for i, name in enumerate(series):
        x = pad_l + i * 120
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="13" class="tick">{escape(name)}</text>')
    for j, (name, values) in enumerate(rows):
        x = pad_l + j * slot + (slot - bar_w) / 2
        y = float(height - pad_b)
        for i, v in enumerate(values):
            h = v / top * (height - pad_t - pad_b)
            y -= h
            if v:
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                             f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(name)}: {v} '
                             f'{escape(series[i])}</title></rect>')
        if n <= 16 or j % max(1, n // 8) == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" class="tick" '
                         f'text-anchor="middle">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
