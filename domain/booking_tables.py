"""Booking rows (R5.3): room calendars and their segments, closures, rule versions,
bookings with their channel, and no-shows.

Capacity is accounted on the segment row itself (`device_used`, `staff_used`), and
taken with one conditional UPDATE (`... WHERE used + units <= capacity`): the
database decides a race for the last place on SQLite and PostgreSQL alike, with
no read-then-write window. `booking_patient_lock` serialises one patient's bookings
so conflict rules between their exams are checked against a settled list.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


class RoomCalendar(SQLModel, table=True):
    """How a room's days are cut into segments (a `domain.booking.calendar.CalendarTemplate`)."""

    __tablename__ = "room_calendar"
    room_id: str = Field(primary_key=True, foreign_key="room.id")
    template: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = "system"


class RoomSegment(SQLModel, table=True):
    """One bookable time segment of one room, with both capacities and what is used."""

    __tablename__ = "room_segment"
    __table_args__ = (
        UniqueConstraint("room_id", "start_at", name="uq_segment_room_start"),
        Index("ix_segment_start_room", "start_at", "room_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    room_id: str = Field(foreign_key="room.id")
    start_at: datetime
    end_at: datetime
    device_capacity: int
    staff_capacity: int
    reserve_units: int = 0
    device_used: int = 0
    staff_used: int = 0


class RoomClosure(SQLModel, table=True):
    __tablename__ = "room_closure"
    id: int | None = Field(default=None, primary_key=True)
    room_id: str = Field(foreign_key="room.id", index=True)
    start_at: datetime
    end_at: datetime
    reason: str
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)


class BookingRulesVersion(SQLModel, table=True):
    """An immutable snapshot of `domain.booking.rules.BookingRules`; the newest is in force."""

    __tablename__ = "booking_rules_version"
    version: int = Field(primary_key=True)
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    note: str = ""
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)


class BookingPatientLock(SQLModel, table=True):
    """A row per patient, written first in every booking transaction of that patient."""

    __tablename__ = "booking_patient_lock"
    patient_id: str = Field(primary_key=True)
    bumps: int = 0


class SlotBooking(SQLModel, table=True):
    """An exam booked into a segment. `active_accession` is set while booked and NULL after,
    so the unique key allows one live booking per order and any number of past ones."""

    __tablename__ = "slot_booking"
    id: str = Field(primary_key=True)
    accession_number: str = Field(index=True)
    active_accession: str | None = Field(default=None, unique=True)
    patient_id: str = Field(index=True)
    plan_id: str = Field(index=True, description="Bookings made together (one-stop, several exams)")
    segment_id: int = Field(foreign_key="room_segment.id", index=True)
    room_id: str
    campus: str
    start_at: datetime = Field(index=True)
    end_at: datetime
    arrive_at: datetime = Field(description="Start minus on-site preparation")
    exam_code: str
    modality: str
    patient_type: str
    device_units: int
    staff_units: int
    state: str = Field(default="booked", index=True, description="booked | cancelled | changed | no_show | attended")
    channel: str = Field(description="Where it was booked (R5.3.2)")
    rules_version: int
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)
    ended_channel: str | None = None
    ended_by: str | None = None
    ended_at: datetime | None = None
    ended_reason: str | None = None


class NoShowRecord(SQLModel, table=True):
    __tablename__ = "no_show_record"
    id: int | None = Field(default=None, primary_key=True)
    booking_id: str = Field(unique=True)
    patient_id: str = Field(index=True)
    accession_number: str
    missed_start: datetime
    recorded_by: str
    recorded_at: datetime = Field(default_factory=utcnow)
