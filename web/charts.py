"""A grouped horizontal bar chart in SVG for the dashboard (server-side, like domain.charts)."""
from __future__ import annotations

from html import escape


def bars_svg(title: str, labels: list[str], series: list[tuple[str, str, list[float | None]]], unit: str,
             width: int = 560, row: int = 34) -> str:
    """One group of bars per label; `series` is (name, colour, values). Missing values draw no bar."""
    left, right, top = 120, 70, 36
    height = top + row * max(len(labels), 1) + 30
    plot = width - left - right
    peak = max([v for _n, _c, vals in series for v in vals if v is not None] + [1.0])
    bar_h = (row - 8) / max(len(series), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f'<title>{escape(title)}</title>',
        f'<text x="0" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, label in enumerate(labels):
        y0 = top + row * i
        parts.append(f'<text x="{left - 8}" y="{y0 + row / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        for j, (name, colour, values) in enumerate(series):
            v = values[i] if i < len(values) else None
            if v is None:
                continue
            w = plot * v / peak
            y = y0 + 4 + bar_h * j
            parts.append(f'<rect x="{left}" y="{y:.1f}" width="{w:.1f}" height="{bar_h - 2:.1f}" fill="{colour}">'
                         f'<title>{escape(label)} {escape(name)}: {v:.1f} {escape(unit)}</title></rect>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 4:.1f}" font-size="10">{v:.0f}</text>')
    legend_y = height - 8
    x = left
    for name, colour, _vals in series:
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{legend_y}">{escape(name)} ({escape(unit)})</text>')
        x += 14 + 9 * len(name) + 60
    parts.append("</svg>")
    return "\n".join(parts)
