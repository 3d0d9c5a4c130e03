"""Booking, worklist and queue rows (R5.3, R6.1.5, R4.2.2, R6.3).

The appointment table's unique (room, start) key is what prevents double
booking; losing a race simply moves on to the next free slot.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.events import EventInput, write_event
from core.config import get_settings
from core.db import get_engine, session_scope
from domain.enums import Priority
from domain.scheduling import as_utc, candidate_starts, study_instance_uid
from domain.tables import Appointment, ExamOrder, QueueEntry, Room, WorklistEntry
from services import queueing


class BookingRequest(BaseModel):
    key: str
    accession_number: str
    modality: str
    not_before: datetime
    actor: str = "system"


class Booking(BaseModel):
    room_id: str
    room_name: str
    start_at: datetime
    end_at: datetime
    station_ae_title: str


class AccessionAt(BaseModel):
    key: str
    accession_number: str
    at: datetime
    actor: str = "system"
    reason: str = ""


class WorklistRequest(BaseModel):
    key: str
    accession_number: str
    attempt: int
    room_id: str
    scheduled_start: datetime
    at: datetime


class EnqueueRequest(BaseModel):
    key: str
    accession_number: str
    room_id: str
    priority: Priority
    at: datetime
    actor: str


def _rooms_for(session: Session, modality: str) -> list[Room]:
    rooms = session.exec(select(Room).order_by(Room.id)).all()
    return [r for r in rooms if modality in r.modalities.split()]


def _booking(room: Room, appt: Appointment) -> Booking:
    return Booking(room_id=room.id, room_name=room.name, start_at=as_utc(appt.start_at),
                   end_at=as_utc(appt.end_at), station_ae_title=room.station_ae_title)


@activity.defn
def book_earliest_slot(req: BookingRequest) -> Booking:
    """Earliest free slot of any room that does the modality (idempotent per accession)."""
    settings = get_settings()
    step = timedelta(minutes=settings.slot_minutes)
    for _ in range(20):
        with Session(get_engine(), expire_on_commit=False) as s:
            existing = s.exec(select(Appointment).where(Appointment.accession_number == req.accession_number)).first()
            if existing is not None:
                return _booking(s.get(Room, existing.room_id), existing)
            rooms = _rooms_for(s, req.modality)
            if not rooms:
                raise ApplicationError(f"no room can perform modality {req.modality}", type="Invalid", non_retryable=True)
            horizon_end = as_utc(req.not_before) + timedelta(days=settings.booking_horizon_days + 1)
            taken = {
                (a.room_id, as_utc(a.start_at))
                for a in s.exec(select(Appointment).where(
                    Appointment.room_id.in_([r.id for r in rooms]),  # type: ignore[attr-defined]
                    Appointment.start_at < horizon_end,
                ))
            }
            choice = next(
                ((room, start) for start in candidate_starts(
                    req.not_before, slot_minutes=settings.slot_minutes, day_start_hour=settings.day_start_hour,
                    day_end_hour=settings.day_end_hour, horizon_days=settings.booking_horizon_days, tz=settings.timezone)
                 for room in rooms if (room.id, start) not in taken),
                None,
            )
            if choice is None:
                raise ApplicationError("no free slot within the booking horizon", type="NoSlot")
            room, start = choice
            appt = Appointment(accession_number=req.accession_number, room_id=room.id, start_at=start, end_at=start + step)
            s.add(appt)
            write_event(s, EventInput(
                key=req.key, accession_number=req.accession_number, at=req.not_before, actor=req.actor,
                kind="appointment_booked", summary=f"booked {room.name} at {start.isoformat()}",
                detail={"room_id": room.id, "start_at": start.isoformat()},
            ))
            try:
                s.commit()
            except IntegrityError:
                s.rollback()  # someone took that slot a moment ago: look again
                continue
            return _booking(room, appt)
    raise ApplicationError("could not book after repeated slot races", type="NoSlot")


@activity.defn
def release_slot(req: AccessionAt) -> None:
    with session_scope() as s:
        for appt in s.exec(select(Appointment).where(Appointment.accession_number == req.accession_number)):
            s.delete(appt)
        write_event(s, EventInput(key=req.key, accession_number=req.accession_number, at=req.at, actor=req.actor,
                                  kind="appointment_released", summary=f"slot released: {req.reason}"))


@activity.defn
def write_worklist_entry(req: WorklistRequest) -> str:
    """Publish the scheduled procedure step the modality will pull (R4.2.2)."""
    with session_scope() as s:
        order = s.get(ExamOrder, req.accession_number)
        room = s.get(Room, req.room_id)
        sps_id = f"{req.accession_number}-{req.attempt}"
        row = s.get(WorklistEntry, sps_id) or WorklistEntry(
            id=sps_id, accession_number=req.accession_number, patient_id=order.patient_id,
            modality=order.modality, station_ae_title=room.station_ae_title, room_id=room.id,
            scheduled_start=req.scheduled_start, procedure_code=order.procedure_code,
            procedure_name=order.procedure_name, study_instance_uid=study_instance_uid(req.accession_number),
        )
        row.room_id, row.station_ae_title = room.id, room.station_ae_title
        row.scheduled_start, row.status = req.scheduled_start, "scheduled"
        s.add(row)
        write_event(s, EventInput(key=req.key, accession_number=req.accession_number, at=req.at, actor="system",
                                  kind="worklist_published", summary=f"worklist entry {sps_id} for {room.station_ae_title}"))
        return sps_id


@activity.defn
def withdraw_worklist_entries(req: AccessionAt) -> None:
    with session_scope() as s:
        for row in s.exec(select(WorklistEntry).where(
            WorklistEntry.accession_number == req.accession_number, WorklistEntry.status == "scheduled"
        )):
            row.status = "withdrawn"
        write_event(s, EventInput(key=req.key, accession_number=req.accession_number, at=req.at, actor=req.actor,
                                  kind="worklist_withdrawn", summary=f"worklist withdrawn: {req.reason}"))


@activity.defn
def set_worklist_status(req: AccessionAt) -> None:
    """`reason` carries the new status (in_progress / completed) for the open steps."""
    with session_scope() as s:
        for row in s.exec(select(WorklistEntry).where(
            WorklistEntry.accession_number == req.accession_number,
            WorklistEntry.status.in_(["scheduled", "in_progress"]),  # type: ignore[attr-defined]
        )):
            row.status = req.reason


@activity.defn
def enqueue_patient(req: EnqueueRequest) -> None:
    """Check-in puts the patient on the room's queue (R6.3 'arrived'): the loop's own row and a
    ticket the call desk and displays work with (`services.queueing`)."""
    with session_scope() as s:
        row = s.exec(select(QueueEntry).where(QueueEntry.accession_number == req.accession_number)).first()
        if row is None:
            row = QueueEntry(accession_number=req.accession_number, room_id=req.room_id,
                             priority_rank=req.priority.rank, arrived_at=req.at)
        row.state = "waiting"
        s.add(row)
        write_event(s, EventInput(key=req.key, accession_number=req.accession_number, at=req.at, actor=req.actor,
                                  kind="queued", summary=f"joined the queue of room {req.room_id}"))
    queueing.check_in(req.accession_number, req.room_id, req.actor, as_utc(req.at))


@activity.defn
def set_queue_state(req: AccessionAt) -> None:
    """`reason` carries the new queue state (called / done / left), for the row and the ticket."""
    with session_scope() as s:
        row = s.exec(select(QueueEntry).where(QueueEntry.accession_number == req.accession_number)).first()
        room_id = row.room_id if row is not None else None
        if row is not None:
            row.state = req.reason
    queueing.loop_state(req.accession_number, req.reason, req.actor, room_id)


@activity.defn
def first_room_for(req: BookingRequest) -> Booking:
    """Stat orders skip booking: the first room that does the modality, starting now."""
    with session_scope() as s:
        rooms = _rooms_for(s, req.modality)
        if not rooms:
            raise ApplicationError(f"no room can perform modality {req.modality}", type="Invalid", non_retryable=True)
        room = rooms[0]
        start = as_utc(req.not_before)
        return Booking(room_id=room.id, room_name=room.name, start_at=start, end_at=start,
                       station_ae_title=room.station_ae_title)
