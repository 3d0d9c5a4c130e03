"""Modality Worklist search over the scheduled steps the exam loop writes (R4.2.2).

The worklist is the `worklist_entry` table (one row per scheduled procedure
step), joined with its order, patient and room in one query. Only steps a
modality may still perform are offered: `scheduled` or `in_progress`, of an
order that is not cancelled. The search itself is never cached: the cancel
saga's withdraw activity (or the order's cancelled status, whichever commits
first) removes the step from the very next query.

Each match is a `WorklistItem` holding every value its response carries (the
patient's record numbers and the order's scheduled steps included), as plain
hashable values: handlers/mwl.py caches encoded responses keyed by the item
itself, so a changed name, status or step is a different key and never meets
an old response.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel
from sqlalchemy import exists, func, or_
from sqlmodel import Session, select

from domain.tables import ExamOrder, Patient, PatientIdentifier, Room, WorklistEntry
from integrations.dicom.matching import (
    DateTimeWindow,
    is_universal,
    person_name_condition,
    string_condition,
    utc_aware,
)
from security.field_crypto import personal_number_indexes
from services.procedure_steps import steps_by_accession

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
class Identifier:
    system: str
    value: str  # what patient_identifier.value holds (security.field_crypto: record numbers in clear)


@dataclass(frozen=True)
class Step:
    """One scheduled procedure step the order carries (services.procedure_steps)."""

    step_id: str
    modality: str
    protocol_code: str
    protocol_name: str


@dataclass(frozen=True)
class WorklistItem:
    """One offered worklist entry with everything its response is built from; equal items answer alike."""

    sps_id: str
    accession_number: str
    patient_id: str
    modality: str
    station_ae_title: str
    room_id: str
    room_name: str
    scheduled_start: datetime  # UTC
    study_instance_uid: str
    status: str
    patient_name: str
    birth_date: date
    sex: str
    procedure_code: str
    procedure_name: str
    body_part: str
    priority: str
    clinician_name: str
    department: str
    clinical_purpose: str
    special_mdro: bool
    special_infectious: bool
    identifiers: tuple[Identifier, ...] = ()
    steps: tuple[Step, ...] = ()


# The joined columns, in WorklistItem's field order up to `special_infectious`.
_COLUMNS = (
    WorklistEntry.id, WorklistEntry.accession_number, WorklistEntry.patient_id, WorklistEntry.modality,
    WorklistEntry.station_ae_title, WorklistEntry.room_id, func.coalesce(Room.name, WorklistEntry.room_id),
    WorklistEntry.scheduled_start, WorklistEntry.study_instance_uid, WorklistEntry.status,
    Patient.name, Patient.birth_date, Patient.sex,
    ExamOrder.procedure_code, ExamOrder.procedure_name, ExamOrder.body_part, ExamOrder.priority,
    ExamOrder.ordering_clinician_name, ExamOrder.ordering_department, ExamOrder.clinical_purpose,
    ExamOrder.special_mdro, ExamOrder.special_infectious,
)


def _set(v: str | None) -> str | None:
    return None if is_universal(v) else str(v).strip()


def search(session: Session, q: WorklistQuery, tz: str) -> list[WorklistItem]:
    stmt = (
        select(*_COLUMNS)
        .select_from(WorklistEntry)
        .join(ExamOrder, ExamOrder.accession_number == WorklistEntry.accession_number)
        .join(Patient, Patient.id == WorklistEntry.patient_id)
        .outerjoin(Room, Room.id == WorklistEntry.room_id)
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
        # The RadLoop patient ID, or any identifier the patient carries (an MRN on a wristband); a personal
        # number is stored sealed and matches exactly, by its blind index (security.field_crypto).
        stmt = stmt.where(or_(
            string_condition(WorklistEntry.patient_id, v),
            exists().where(PatientIdentifier.patient_id == WorklistEntry.patient_id,
                           or_(string_condition(PatientIdentifier.value, v),
                               PatientIdentifier.value_bidx.in_(personal_number_indexes(v)))),  # type: ignore[union-attr]
        ))
    window = DateTimeWindow(q.start_date, q.start_time, tz)
    for cond in window.conditions(WorklistEntry.scheduled_start):
        stmt = stmt.where(cond)
    stmt = stmt.order_by(WorklistEntry.scheduled_start).limit(MAX_MATCHES)
    # Core execution: plain rows, none of the ORM's per-row bookkeeping (this runs on every C-FIND)
    rows = [row for row in session.connection().execute(stmt).all() if window.time_of_day_ok(utc_aware(row[7]))]
    if not rows:
        return []
    idents = identifiers_of(session, {row[2] for row in rows})
    steps = steps_of(session, {row[1] for row in rows})
    return [WorklistItem(*row[:7], utc_aware(row[7]), *row[8:], identifiers=idents.get(row[2], ()),  # type: ignore[misc]
                         steps=steps.get(row[1], ())) for row in rows]


def identifiers_of(session: Session, patient_ids: set[str]) -> dict[str, tuple[Identifier, ...]]:
    """Each patient's identifiers as stored (in a stable order, so equal facts make equal items)."""
    out: dict[str, list[Identifier]] = {}
    stmt = (select(PatientIdentifier.patient_id, PatientIdentifier.system, PatientIdentifier.value)
            .where(PatientIdentifier.patient_id.in_(patient_ids))  # type: ignore[attr-defined]
            .order_by(PatientIdentifier.patient_id, PatientIdentifier.id))
    for patient_id, system, value in session.connection().execute(stmt):
        out.setdefault(patient_id, []).append(Identifier(system, value))
    return {k: tuple(v) for k, v in out.items()}


def steps_of(session: Session, accessions: set[str]) -> dict[str, tuple[Step, ...]]:
    """The scheduled steps each order carries (services.procedure_steps), in the order the HIS sent them."""
    return {acc: tuple(Step(r.step_id, r.modality, r.protocol_code, r.protocol_name) for r in rows)
            for acc, rows in steps_by_accession(session, accessions).items()}
