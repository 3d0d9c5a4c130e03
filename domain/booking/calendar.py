"""Room calendars cut into time segments, each with device and staff capacity (R5.3.1).

A segment is the unit patients are booked into ("08:30-09:00, CT room 2"). Its
capacity has two sides: what the device can do and what the technologists on
duty can do; a booking uses units of both, and the smaller side decides.
`reserve_units` is held back for patient types allowed to use it (emergency).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Period(BaseModel):
    """A stretch of opening time repeated on some weekdays (0 = Monday)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    weekdays: frozenset[int] = frozenset(range(7))
    start: time
    end: time
    device_capacity: int = Field(ge=0)
    staff_capacity: int = Field(ge=0)
    reserve_units: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Period":
        if self.end <= self.start:
            raise ValueError("a period ends after it starts")
        if not self.weekdays <= frozenset(range(7)):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return self


class CalendarTemplate(BaseModel):
    """How a room's days are cut: the segment length and the opening periods."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    segment_minutes: int = Field(30, ge=5, le=240)
    periods: tuple[Period, ...]
    exam_codes: frozenset[str] | None = Field(
        None, description="Procedure codes the room does; None: every exam of its modalities")


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    start: datetime
    end: datetime
    device_capacity: int
    staff_capacity: int
    reserve_units: int


def segments_for_day(template: CalendarTemplate, day: date, tz: str) -> list[SegmentSpec]:
    """The day's segments in UTC; a segment never runs past the end of its period."""
    zone = ZoneInfo(tz)
    step = timedelta(minutes=template.segment_minutes)
    out: list[SegmentSpec] = []
    for p in template.periods:
        if day.weekday() not in p.weekdays:
            continue
        t = datetime.combine(day, p.start, zone)
        end = datetime.combine(day, p.end, zone)
        while t + step <= end:
            out.append(SegmentSpec(t.astimezone(timezone.utc), (t + step).astimezone(timezone.utc),
                                   p.device_capacity, p.staff_capacity, p.reserve_units))
            t += step
    return sorted(out, key=lambda s: s.start)


@dataclass(frozen=True, slots=True)
class RoomView:
    id: str
    campus: str
    modalities: frozenset[str]
    exam_codes: frozenset[str] | None = None

    def can_do(self, procedure_code: str, modality: str) -> bool:
        return modality in self.modalities and (self.exam_codes is None or procedure_code in self.exam_codes)


@dataclass(frozen=True, slots=True)
class SegmentView:
    """A segment as the database holds it now (capacity and what is used)."""

    id: int
    room_id: str
    start: datetime
    end: datetime
    device_capacity: int
    staff_capacity: int
    device_used: int = 0
    staff_used: int = 0
    reserve_units: int = 0


@dataclass(frozen=True, slots=True)
class Closure:
    room_id: str
    start: datetime
    end: datetime
    reason: str

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


def default_template() -> CalendarTemplate:
    """Weekday mornings and afternoons, Saturday mornings: 30-minute segments of 2 exams."""
    work = frozenset(range(5))
    return CalendarTemplate(segment_minutes=30, periods=(
        Period(weekdays=work | {5}, start=time(8, 0), end=time(12, 0), device_capacity=2, staff_capacity=2,
               reserve_units=0),
        Period(weekdays=work, start=time(13, 30), end=time(17, 30), device_capacity=2, staff_capacity=2),
    ))
