"""Order rows: QC (R8.1), corrections from the ordering side, loop step and status."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.order_qc import OrderFacts, QCIssue, check_order
from domain.tables import ExamOrder, Patient


class OrderRef(BaseModel):
    accession_number: str


class OrderQCResult(BaseModel):
    passed: bool
    issues: list[QCIssue]


class OrderFix(BaseModel):
    key: str
    accession_number: str
    at: datetime
    actor: str
    fields: dict[str, str]


class StepChange(BaseModel):
    key: str
    accession_number: str
    at: datetime
    step: str
    status: str | None = None
    actor: str = "system"
    summary: str = ""


def _order(session, accession: str) -> ExamOrder:
    row = session.get(ExamOrder, accession)
    if row is None:
        raise ApplicationError(f"no order {accession}", type="NotFound", non_retryable=True)
    return row


@activity.defn
def run_order_qc(ref: OrderRef) -> OrderQCResult:
    with session_scope() as s:
        o = _order(s, ref.accession_number)
        patient = s.get(Patient, o.patient_id)
        facts = OrderFacts(
            sex=patient.sex if patient else "U", procedure_code=o.procedure_code,
            procedure_name=o.procedure_name, body_part=o.body_part, modality=o.modality,
            purpose=o.clinical_purpose, diagnosis=o.clinical_diagnosis, history=o.clinical_history,
        )
    issues = check_order(facts)
    return OrderQCResult(passed=not issues, issues=issues)


_ORDER_FIELDS = {
    "purpose": "clinical_purpose", "diagnosis": "clinical_diagnosis", "history": "clinical_history",
    "procedure_code": "procedure_code", "procedure_name": "procedure_name", "body_part": "body_part",
}


@activity.defn
def apply_order_fix(fix: OrderFix) -> None:
    """Apply the ordering side's corrections; patient sex is corrected on the patient."""
    with session_scope() as s:
        o = _order(s, fix.accession_number)
        for name, value in fix.fields.items():
            if name == "patient_sex":
                patient = s.get(Patient, o.patient_id)
                if patient is not None:
                    patient.sex = value
            elif name in _ORDER_FIELDS:
                setattr(o, _ORDER_FIELDS[name], value)
        o.updated_at = fix.at
        write_event(s, EventInput(
            key=fix.key, accession_number=fix.accession_number, at=fix.at, actor=fix.actor,
            kind="order_corrected", summary="order corrected by the ordering side",
            detail={"fields": sorted(fix.fields)},
        ))


@activity.defn
def set_order_step(change: StepChange) -> None:
    with session_scope() as s:
        set_order_step_in(s, change)


def set_order_step_in(s: Session, change: StepChange) -> None:
    """Move the order row to `change.step` and record the event, inside the caller's transaction."""
    o = _order(s, change.accession_number)
    o.step = change.step
    if change.status:
        o.status = change.status
    o.updated_at = change.at
    write_event(s, EventInput(
        key=change.key, accession_number=change.accession_number, at=change.at,
        actor=change.actor, kind=f"step:{change.step}",
        summary=change.summary or f"loop step -> {change.step}",
        detail={"status": change.status} if change.status else {},
    ))
