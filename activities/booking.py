"""Activities the exam loop can call to book through the capacity-aware slot pool (R5.3, R6.1.5).

New activities with their own models, beside `activities.scheduling.book_earliest_slot`,
whose models running histories depend on; loops started after `workflow.patched("booking-slot-pool")`
call these. `SlotBooked` carries the fields of `activities.scheduling.Booking`, so the loop
keeps one `self.booking` shape, plus what the patient is told (receipt, reminder time).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, Field
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.config import get_settings
from core.db import get_engine
from domain.booking.rules import Channel
from domain.booking_tables import SlotBooking
from domain.scheduling import as_utc
from services import booking
from services.booking import BookingRefused, BookRequest, PatientFacts
from services.errors import Invalid, NotFound


class SlotBookingRequest(BaseModel):
    key: str
    accession_number: str
    not_before: datetime
    facts: PatientFacts = PatientFacts()
    channel: Channel = Channel.system
    actor: str = "system"
    segment_id: int | None = Field(None, description="A segment the registrar picked from a quote")


class SlotBooked(BaseModel):
    booking_id: str
    room_id: str
    room_name: str
    station_ae_title: str
    start_at: datetime
    end_at: datetime
    arrive_at: datetime
    rules_version: int
    preparation: list[str] = Field(default_factory=list)
    receipt: str = Field("", description="Plain-text receipt to send the patient (send_notification)")
    remind_at: datetime | None = Field(None, description="When the loop reminds the patient; None: no reminder")


class SlotRelease(BaseModel):
    key: str
    accession_number: str
    at: datetime
    actor: str = "system"
    reason: str = ""
    channel: Channel = Channel.system


@activity.defn(name="book_exam_slot")
def book_exam_slot(req: SlotBookingRequest) -> SlotBooked:
    """Book the order's earliest feasible segment; a retry returns the booking already made.

    A refusal (no time in the window, eGFR missing, ...) is non-retryable `NoSlot` with
    the reasons as details: retrying cannot cure it, a person must act.
    """
    now = max(datetime.now(timezone.utc), as_utc(req.not_before))
    chosen = {req.accession_number: req.segment_id} if req.segment_id else {}
    try:
        [b] = booking.book(BookRequest(accession_numbers=[req.accession_number], channel=req.channel,
                                       actor=req.actor, facts=req.facts, not_before=req.not_before,
                                       segment_ids=chosen), now=now)
    except BookingRefused as err:
        raise ApplicationError(err.reason, [r.model_dump() for r in err.reasons], type="NoSlot",
                               non_retryable=True) from err
    except Invalid as err:  # e.g. a picked segment outside the window: a person picks again
        raise ApplicationError(err.reason, [], type="NoSlot", non_retryable=True) from err
    except NotFound as err:
        raise ApplicationError(err.reason, type="NotFound", non_retryable=True) from err
    return SlotBooked(booking_id=b.id, room_id=b.room_id, room_name=b.room_name, station_ae_title=b.station_ae_title,
                      start_at=b.start_at, end_at=b.end_at, arrive_at=b.arrive_at, rules_version=b.rules_version,
                      preparation=b.preparation, receipt=booking.receipt_for_plan(b.plan_id),
                      remind_at=reminder_time(b.arrive_at))


def reminder_time(arrive_at: datetime) -> datetime | None:
    """`booking_reminder_hours` before arrival (None: reminders are off). The loop skips a
    time already past by its own clock: the receipt has just gone out."""
    hours = get_settings().booking_reminder_hours
    return as_utc(arrive_at) - timedelta(hours=hours) if hours > 0 else None


@activity.defn(name="release_exam_slot")
def release_exam_slot(req: SlotRelease) -> None:
    """Cancel the order's live booking (saga compensation); nothing live is a no-op, so retries are safe."""
    with Session(get_engine()) as s:
        live = s.exec(select(SlotBooking.id).where(SlotBooking.active_accession == req.accession_number)).first()
    if live is not None:
        booking.cancel(live, req.channel, req.actor, req.reason, now=as_utc(req.at))
