"""Order intake (R5.1.1, R5.1.2): create-or-return an order and start its loop.

REST and HL7 both come through here, so the same placer order can never start
two loops whichever way it arrives. The row is written first (unique on placer
system + placer order number); the workflow is then started with an ID derived
from the accession number and `USE_EXISTING` on conflict, so a crash between the
two steps heals on the sender's retry.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.config import get_settings
from domain.enums import Priority
from domain.loop import EXAM_LOOP_WORKFLOW, ExamLoopInput, exam_loop_workflow_id
from domain.orders import OrderIn
from domain.search_attributes import SA_ACCESSION, SA_CRITICAL, SA_PATIENT, SA_PRIORITY, SA_STEP
from domain.tables import AccessionCounter, ExamOrder, Patient, PatientIdentifier
from security.field_crypto import identifier_index
from services.procedure_catalogue import check_procedure



class IdentifierRace(Exception):
    """Two intakes created the same new patient at once; the loser retries and matches."""


@dataclass(frozen=True)
class IntakeResult:
    order: ExamOrder
    created: bool


def match_or_create_patient(session: Session, order: OrderIn) -> Patient:
    """Exact match on any trusted identifier, else a new UUID-based patient ID.

    Scored matching and merges belong to the EMPI (HL7 issue); here a known
    identifier simply maps to its patient and new identifiers are attached.
    """
    p = order.patient
    known: Patient | None = None
    for ident in p.identifiers:
        row = session.exec(
            select(PatientIdentifier).where(
                PatientIdentifier.system == ident.system,
                PatientIdentifier.value_bidx == identifier_index(ident.system, ident.value),
            )
        ).first()
        if row is not None:
            known = session.get(Patient, row.patient_id)
            break
    if known is None:
        known = Patient(id=str(uuid.uuid4()), name=p.name, sex=p.sex.value, birth_date=p.birth_date)
        session.add(known)
        session.flush()
    for ident in p.identifiers:
        exists = session.exec(
            select(PatientIdentifier).where(
                PatientIdentifier.system == ident.system,
                PatientIdentifier.value_bidx == identifier_index(ident.system, ident.value),
            )
        ).first()
        if exists is None:
            session.add(PatientIdentifier(patient_id=known.id, system=ident.system, value=ident.value))
        elif exists.patient_id != known.id:
            # A concurrent intake registered this person a moment ago: start over, and match it.
            raise IdentifierRace(f"{ident.system}:{ident.value} was registered concurrently")
    session.flush()
    return known


def next_accession_number(session: Session, now: datetime | None = None) -> str:
    """`A` + yyyymmdd + 5-digit daily counter, e.g. A2026112700042."""
    day = (now or datetime.now(timezone.utc)).strftime("%Y%m%d")
    session.flush()  # the transaction's own pending rows first, as the ORM would before a query
    table = AccessionCounter.__table__
    upsert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # One statement that takes the row lock (PostgreSQL) or the write lock (SQLite) and counts: a
    # read-then-write would let concurrent intakes read the same number and all but one retry.
    last = session.execute(upsert(table).values(day=day, last=1)
                           .on_conflict_do_update(index_elements=[table.c.day], set_={"last": table.c.last + 1})
                           .returning(table.c.last)).scalar_one()
    return f"A{day}{last:05d}"


def find_by_placer(session: Session, placer_system: str, placer_order_number: str) -> ExamOrder | None:
    return session.exec(
        select(ExamOrder).where(
            ExamOrder.placer_system == placer_system,
            ExamOrder.placer_order_number == placer_order_number,
        )
    ).first()


def record_order(session_factory, order: OrderIn,
                 patient_step: Callable[[Session], str] | None = None,
                 before_commit: Callable[[Session, IntakeResult], None] | None = None) -> IntakeResult:
    """Write patient + order rows in one transaction; return the existing order on a duplicate.

    `patient_step` (HL7: the EMPI's registration, services.patient_registry.register_in) writes the
    patient in this same transaction and returns its ID, in place of the exact-identifier match; it
    runs for an order already known too (a resent order still links its new identifiers), and raises
    IdentifierRace when a concurrent registration won (the whole transaction then starts over). One commit, not two: on
    SQLite each commit waits its turn behind the worker's writes. `before_commit` adds the caller's own
    rows to the same transaction (HL7: the message's log row with its ACK), for a new order and for
    one already known alike.

    Raises services.procedure_catalogue.ProcedureRefused for a code the center does not perform.
    """
    for _attempt in range(5):
        with session_factory() as session:
            # Reads first: on SQLite the write lock is taken at the first write and held to the commit.
            existing = find_by_placer(session, order.placer_system, order.placer_order_number)
            if existing is not None:
                result = IntakeResult(existing, created=False)
                if patient_step is not None or before_commit is not None:
                    try:
                        if patient_step is not None:
                            patient_step(session)  # a resent order still links its new identifiers
                        if before_commit is not None:
                            before_commit(session, result)
                        session.commit()
                    except (IntegrityError, IdentifierRace):
                        session.rollback()
                        continue
                return result
            check_procedure(session, order.procedure)  # an unknown code is refused before anything is written
            try:
                patient_id = patient_step(session) if patient_step is not None else None
                patient = session.get(Patient, patient_id) if patient_id else match_or_create_patient(session, order)
                accession = next_accession_number(session)
                row = ExamOrder(
                    accession_number=accession,
                    workflow_id=exam_loop_workflow_id(accession),
                    placer_system=order.placer_system,
                    placer_order_number=order.placer_order_number,
                    patient_id=patient.id,
                    procedure_code=order.procedure.code,
                    procedure_name=order.procedure.name,
                    modality=order.procedure.modality,
                    body_part=order.procedure.body_part,
                    laterality=order.procedure.laterality,
                    priority=order.priority.value,
                    ordering_clinician_id=order.ordering.clinician_id,
                    ordering_clinician_name=order.ordering.clinician_name,
                    ordering_department=order.ordering.department,
                    clinical_history=order.clinical.history,
                    clinical_diagnosis=order.clinical.diagnosis,
                    clinical_purpose=order.clinical.purpose,
                    special_critical=order.special.critical,
                    special_mdro=order.special.mdro,
                    special_infectious=order.special.infectious,
                )
                session.add(row)
                result = IntakeResult(row, created=True)
                if before_commit is not None:
                    before_commit(session, result)
                session.commit()
                return result
            except (IntegrityError, IdentifierRace):
                # A concurrent request won the race (placer, identifier or counter): re-read.
                session.rollback()
    raise RuntimeError("order intake could not complete after concurrent retries")


def loop_input(order: ExamOrder) -> ExamLoopInput:
    return ExamLoopInput(
        accession_number=order.accession_number,
        patient_id=order.patient_id,
        priority=Priority(order.priority),
        modality=order.modality,
        ordering_clinician_id=order.ordering_clinician_id,
        ordering_department=order.ordering_department,
        special_critical=order.special_critical,
        correction_window_days=get_settings().correction_window_days,
    )


def initial_search_attributes(order: ExamOrder) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_ACCESSION, order.accession_number),
            SearchAttributePair(SA_PATIENT, order.patient_id),
            SearchAttributePair(SA_STEP, "order_qc"),
            SearchAttributePair(SA_PRIORITY, order.priority),
            SearchAttributePair(SA_CRITICAL, bool(order.special_critical)),
        ]
    )


async def ensure_loop_started(client: Client, order: ExamOrder, task_queue: str | None = None) -> str:
    """Start the order's loop, or attach to the one already running (idempotent)."""
    try:
        handle = await client.start_workflow(
            EXAM_LOOP_WORKFLOW,
            loop_input(order),
            id=order.workflow_id,
            task_queue=task_queue or get_settings().temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A closed loop is never restarted by a resent order.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=initial_search_attributes(order),
        )
    except WorkflowAlreadyStartedError:
        return order.workflow_id
    return handle.id
