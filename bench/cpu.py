"""CPU seconds used by the dev server and by this process (worker + driver), from /proc.

Loops/s alone does not say what limits it; CPU per loop on each side does
(temporal-notes.md: the dev server is expected to be the bottleneck). Linux only;
elsewhere the figures are reported as unavailable rather than guessed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may contain spaces: split after the last ')'.
    head, _, rest = raw.rpartition(")")
    return [head.split("(", 1)[1], *rest.split()]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of `pid`, or None if it cannot be read."""
    fields = _stat(pid)
    if fields is None:
        return None
    # after comm: state(1) ppid(2) ... utime is field 14 of stat, stime 15 -> indexes 12, 13 here.
    return (int(fields[12]) + int(fields[13])) / _TICKS


def child_pid(name: str) -> int | None:
    """The pid of our child process whose command name is `name` (the dev server: `temporal`)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] == name and int(fields[2]) == me:
                return int(entry.name)
    return None


@dataclass
class CpuMeter:
    """Snapshot CPU of the server and of this process; `since()` gives the difference."""

    server_pid: int | None

    def read(self) -> tuple[float | None, float]:
        server = cpu_seconds(self.server_pid) if self.server_pid else None
        times = os.times()
        return server, times.user + times.system

    def since(self, start: tuple[float | None, float]) -> tuple[float | None, float]:
        server, own = self.read()
        return (None if server is None or start[0] is None else server - start[0]), own - start[1]
