"""Time as a dependency: lockout windows and idle timeouts are tested by moving a clock, not by sleeping."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that moves only when told (tests, drills)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def aware(dt: datetime) -> datetime:
    """SQLite hands timestamps back without an offset; they were written as UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)
