"""Small server-side SVG charts (no JavaScript, no chart library): printable and fast."""
from __future__ import annotations

from html import escape


def weekly_compliance_svg(weeks: list[str], rates: list[float | None], medians: list[float | None],
                          title: str, width: int = 760, height: int = 320) -> str:
    """Bars: share notified within 10 minutes per week; line: median time to acknowledgment."""
    left, right, top, bottom = 56, 56, 40, 56
    pw, ph = width - left - right, height - top - bottom
    n = max(len(weeks), 1)
    slot = pw / n
    max_minutes = max([m / 60 for m in medians if m is not None] + [10.0])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f'<title>{escape(title)}</title>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>',
        f'<line x1="{left + pw}" y1="{top}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>',
    ]
    for frac in (0, 0.5, 0.9, 1.0):
        y = top + ph * (1 - frac)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{int(frac * 100)}%</text>')
    for i in range(3):
        minutes = max_minutes * i / 2
        y = top + ph * (1 - minutes / max_minutes)
        parts.append(f'<text x="{left + pw + 6}" y="{y + 4:.1f}">{minutes:.0f} min</text>')
    y10 = top + ph * (1 - 10 / max_minutes)
    parts.append(f'<line x1="{left}" y1="{y10:.1f}" x2="{left + pw}" y2="{y10:.1f}" stroke="#c0392b" '
                 f'stroke-dasharray="4 3"><title>10-minute line</title></line>')
    points = []
    for i, (week, rate, med) in enumerate(zip(weeks, rates, medians)):
        x = left + slot * i + slot * 0.15
        if rate is not None:
            h = ph * rate
            colour = "#27ae60" if rate >= 0.95 else "#e67e22" if rate >= 0.8 else "#c0392b"
            parts.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{escape(week)}: {rate:.0%} notified within 10 min</title></rect>')
        if med is not None:
            points.append((left + slot * (i + 0.5), top + ph * (1 - (med / 60) / max_minutes), week, med))
        if n <= 16 or i % max(1, n // 12) == 0:
            parts.append(f'<text x="{left + slot * (i + 0.5):.1f}" y="{top + ph + 16}" text-anchor="middle" '
                         f'font-size="10">{escape(week[5:])}</text>')
    if points:
        path = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y, _w, _m) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="#2c3e50" stroke-width="2"/>')
        for x, y, week, med in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#2c3e50">'
                         f'<title>{escape(week)}: median {med / 60:.1f} min to acknowledgment</title></circle>')
    parts.append(f'<text x="{left}" y="{height - 12}">bars: notified within 10 min (left axis) · '
                 f'line: median time to acknowledgment (right axis) · dashed: 10 min</text>')
    parts.append("</svg>")
    return "\n".join(parts)
