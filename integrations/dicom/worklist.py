"""Modality Worklist search over the scheduled steps the exam loop writes (R4.2.2).

The worklist is the `worklist_entry` table (one row per scheduled procedure
step), joined with its order and patient. Only steps a modality may still
perform are offered: `scheduled` or `in_progress`, of an order that is not
cancelled. Nothing is cached: the cancel saga's withdraw activity (or the
order's cancelled status, whichever commits first) removes the step from the
very next query.
"""
from __future__ import annotations

from dataclasses import dataclass
from pydantic import BaseModel
from sqlalchemy import exists, or_
from sqlmodel import Session, select

from domain.tables import ExamOrder, Patient, PatientIdentifier, Room, WorklistEntry
from integrations.dicom.matching import (
    DateTimeWindow,
    is_universal,
    person_name_condition,
    string_condition,
    utc_aware,
)

OFFERED_STATUSES = ("scheduled", "in_progress")
MAX_MATCHES = 1000  # a modality asking for everything gets a bounded answer


class WorklistQuery(BaseModel):
    """The matching keys a modality sent (universal keys are None)."""

    accession_number: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    modality: str | None = None
    station_ae_title: str | None = None
    start_date: str | None = None
    start_time: str | None = None
    sps_id: str | None = None
    study_instance_uid: str | None = None


@dataclass(frozen=True)
class WorklistItem:
    entry: WorklistEntry
    order: ExamOrder
    patient: Patient
    identifiers: list[PatientIdentifier]
    room_name: str


def _set(v: str | None) -> str | None:
    return None if is_universal(v) else str(v).strip()


def search(session: Session, q: WorklistQuery, tz: str) -> list[WorklistItem]:
    stmt = (
        select(WorklistEntry, ExamOrder, Patient)
        .join(ExamOrder, ExamOrder.accession_number == WorklistEntry.accession_number)
        .join(Patient, Patient.id == WorklistEntry.patient_id)
        .where(WorklistEntry.status.in_(OFFERED_STATUSES))  # type: ignore[attr-defined]
        .where(ExamOrder.status != "cancelled")
    )
    if v := _set(q.accession_number):
        stmt = stmt.where(string_condition(WorklistEntry.accession_number, v))
    if v := _set(q.modality):
        stmt = stmt.where(string_condition(WorklistEntry.modality, v))
    if v := _set(q.station_ae_title):
        stmt = stmt.where(string_condition(WorklistEntry.station_ae_title, v))
    if v := _set(q.sps_id):
        stmt = stmt.where(string_condition(WorklistEntry.id, v))
    if v := _set(q.study_instance_uid):
        stmt = stmt.where(string_condition(WorklistEntry.study_instance_uid, v))
    if v := _set(q.patient_name):
        stmt = stmt.where(person_name_condition(Patient.name, v))
    if v := _set(q.patient_id):
        # The RadLoop patient ID, or any identifier the patient carries (an MRN on a wristband).
        stmt = stmt.where(or_(
            string_condition(WorklistEntry.patient_id, v),
            exists().where(PatientIdentifier.patient_id == WorklistEntry.patient_id,
                           string_condition(PatientIdentifier.value, v)),
        ))
    window = DateTimeWindow(q.start_date, q.start_time, tz)
    for cond in window.conditions(WorklistEntry.scheduled_start):
        stmt = stmt.where(cond)
    stmt = stmt.order_by(WorklistEntry.scheduled_start).limit(MAX_MATCHES)
    rows = [(e, o, p) for e, o, p in session.exec(stmt) if window.time_of_day_ok(utc_aware(e.scheduled_start))]
    if not rows:
        return []
    patient_ids = {p.id for _, _, p in rows}
    idents: dict[str, list[PatientIdentifier]] = {}
    for ident in session.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id.in_(patient_ids))):  # type: ignore[attr-defined]
        idents.setdefault(ident.patient_id, []).append(ident)
    rooms = {r.id: r.name for r in session.exec(select(Room))}
    return [WorklistItem(e, o, p, idents.get(p.id, []), rooms.get(e.room_id, e.room_id)) for e, o, p in rows]
