"""Rows the booking tests need: patients and orders as intake writes them, full segments."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import update
from sqlmodel import Session, col

from core.db import get_engine
from domain.booking_tables import RoomSegment
from domain.tables import ExamOrder, Patient

# Monday 2030-01-07 08:00 in Shanghai.
NOW = datetime(2030, 1, 7, 0, 0, tzinfo=timezone.utc)

MODALITY = {"CT": "CT", "MR": "MR", "US": "US", "RF": "RF", "DX": "DX"}


def make_order(accession: str, procedure_code: str, patient_id: str = "p-1", sex: str = "F") -> ExamOrder:
    with Session(get_engine(), expire_on_commit=False) as s:
        if s.get(Patient, patient_id) is None:
            s.add(Patient(id=patient_id, name="张三", sex=sex, birth_date=date(1970, 5, 1)))
            s.flush()
        order = ExamOrder(
            accession_number=accession, workflow_id=f"exam-loop-{accession}", placer_system="HIS",
            placer_order_number=f"PO-{accession}", patient_id=patient_id, procedure_code=procedure_code,
            procedure_name=procedure_code, modality=MODALITY[procedure_code.split("-")[0]], body_part="X",
            priority="routine", ordering_clinician_id="c-1", ordering_clinician_name="Dr Li",
            ordering_department="respiratory")
        s.add(order)
        s.commit()
        return order


def fill_rooms(room_ids: list[str], leave_free: int | None = None) -> None:
    """Use up every place of the rooms' segments; optionally leave one unit free in segment `leave_free`."""
    with Session(get_engine()) as s:
        s.execute(update(RoomSegment).where(col(RoomSegment.room_id).in_(room_ids)).values(
            device_used=RoomSegment.device_capacity, staff_used=RoomSegment.staff_capacity))
        if leave_free is not None:
            s.execute(update(RoomSegment).where(RoomSegment.id == leave_free).values(
                device_used=RoomSegment.device_capacity - 1, staff_used=RoomSegment.staff_capacity - 1))
        s.commit()
