"""Device utilisation for the manager dashboard (R9.1.3): per room and day, the minutes a
device was examining (exam started -> completed, as recorded by the API or MPPS) over the
minutes it was open (its booking segments, R5.3.1). Pure functions over rows.

An exam counts on the local day it started, in the room of its worklist entry. Overlapping
intervals are merged first, so two exams recorded at once, or overlapping segments, are not
counted twice. A room with exams but no segments that day has no rate (opening unknown).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def merged_minutes(intervals: list[Interval]) -> float:
    """Minutes covered by the union of the intervals."""
    total, end = 0.0, None
    for start, stop in sorted((_utc(a), _utc(b)) for a, b in intervals if b > a):
        if end is None or start >= end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total / 60


@dataclass(frozen=True)
class RoomDay:
    room_id: str
    day: date
    exams: int
    busy_minutes: float
    open_minutes: float

    @property
    def rate(self) -> float | None:
        return self.busy_minutes / self.open_minutes if self.open_minutes else None


@dataclass(frozen=True)
class RoomTotal:
    room_id: str
    exams: int
    busy_minutes: float
    open_minutes: float
    busy_when_open: float  # busy minutes on the days the room had opening hours (the rate's numerator)

    @property
    def rate(self) -> float | None:
        return self.busy_when_open / self.open_minutes if self.open_minutes else None


def by_room_day(exams: list[tuple[str, datetime, datetime]], openings: list[tuple[str, datetime, datetime]],
                tz: str) -> list[RoomDay]:
    """`exams` and `openings` are (room_id, start, end); the result is sorted by room then day."""
    zone = ZoneInfo(tz)
    busy: dict[tuple[str, date], list[Interval]] = defaultdict(list)
    opened: dict[tuple[str, date], list[Interval]] = defaultdict(list)
    for room, start, end in exams:
        busy[(room, _utc(start).astimezone(zone).date())].append((start, end))
    for room, start, end in openings:
        opened[(room, _utc(start).astimezone(zone).date())].append((start, end))
    return [RoomDay(room, day, len(busy.get((room, day), [])), merged_minutes(busy.get((room, day), [])),
                    merged_minutes(opened.get((room, day), [])))
            for room, day in sorted(set(busy) | set(opened))]


def by_room(days: list[RoomDay]) -> list[RoomTotal]:
    """The period per room; its rate counts only days with opening hours (others have no denominator)."""
    totals: dict[str, list[float]] = {}
    for d in days:
        t = totals.setdefault(d.room_id, [0, 0.0, 0.0, 0.0])
        t[0] += d.exams
        t[1] += d.busy_minutes
        t[2] += d.open_minutes
        t[3] += d.busy_minutes if d.open_minutes else 0.0
    return [RoomTotal(room, int(t[0]), t[1], t[2], t[3]) for room, t in sorted(totals.items())]
