"""Small statistics and table printing shared by the benchmarks."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation.

    With n samples, p99 is the ceil(0.99 n)-th smallest: for n <= 100 that is the maximum.
    """
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A left-aligned plain-text table (no dependency, readable in a terminal and in docs)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine_note() -> str:
    """CPUs and load average: the figures mean little without knowing what else was running."""
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) {load}"
