"""Check-in's reads and writes (R6.1.3, R6.1.4): what the exam requires signed, and the record
of the identity check, consents and notices once the registrar completes the task.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import Session, func, select
from temporalio import activity

from activities.events import EventInput, write_event
from core.config import get_settings
from core.db import get_engine
from domain.consent_tables import ConsentRecord
from domain.booking.check_in import CheckInNeed, check_in_needs
from domain.scheduling import as_utc
from domain.tables import DomainEvent, ExamOrder, Patient, User
from services import consent
from services.booking_calendar import active_rules
from services.errors import NotFound


class CheckInAsk(BaseModel):
    accession_number: str
    at: datetime


class CheckInNeeds(BaseModel):
    needs: list[str] = Field(default_factory=list, description="CheckInNeed values the patient must sign")
    same_name_patients: int = Field(0, description="Other patients with the same name: check the document twice")


class CheckInRecord(BaseModel):
    key: str
    accession_number: str
    at: datetime
    actor: str
    identity_document_type: str
    signed: list[str] = Field(default_factory=list)
    consent_method: str = "electronic"
    signature_sha256: str | None = None
    signature_ref: str = ""
    witness: str = ""


@activity.defn
def check_in_requirements(ask: CheckInAsk) -> CheckInNeeds:
    with Session(get_engine()) as s:
        order = s.get(ExamOrder, ask.accession_number)
        if order is None:
            raise NotFound(f"no order {ask.accession_number}")
        patient = s.get(Patient, order.patient_id)
        exam = active_rules(s).exam_rule(order.procedure_code, order.modality)
        needs = check_in_needs(exam, patient.sex, patient.birth_date, as_utc(ask.at).date(),
                               get_settings().childbearing_ages)
        twins = s.exec(select(func.count()).select_from(Patient).where(
            Patient.name == patient.name, Patient.id != patient.id)).one()
        return CheckInNeeds(needs=[n.value for n in needs], same_name_patients=twins)


@activity.defn
def record_check_in(rec: CheckInRecord) -> None:
    """The contrast consent becomes a consent record (services.consent, R10.3.2); the notices and
    the identity check are on the check-in event with the signature hash and time. Idempotent by key."""
    at = as_utc(rec.at)
    with Session(get_engine()) as s:
        if s.get(DomainEvent, rec.key) is not None:
            return
        order = s.get(ExamOrder, rec.accession_number)
        by = s.get(User, rec.actor)
        if order is None or by is None:
            raise NotFound(f"no order {rec.accession_number} or user {rec.actor}")
        consent_ids = []
        already = s.exec(select(ConsentRecord.id).where(  # a retry after the consent's own commit
            ConsentRecord.accession_number == rec.accession_number, ConsentRecord.scope == "contrast_agent",
            ConsentRecord.given_at == at)).first()
        if already is not None:
            consent_ids.append(already)
        elif CheckInNeed.contrast_consent.value in rec.signed:
            row = consent.record(s, order.patient_id, consent.ConsentIn(
                scope=consent.ConsentScope.contrast_agent, purpose=f"contrast agent for {order.procedure_code}",
                method=rec.consent_method, given_at=at, accession_number=rec.accession_number,
                witness=rec.witness, document_ref=rec.signature_ref or (rec.signature_sha256 or "")), by, at)
            consent_ids.append(row.id)
        write_event(s, EventInput(
            key=rec.key, accession_number=rec.accession_number, at=at, actor=rec.actor, kind="checked_in",
            summary=f"identity checked ({rec.identity_document_type}); signed: {', '.join(rec.signed) or 'nothing required'}",
            detail={"identity_document_type": rec.identity_document_type, "signed": rec.signed,
                    "consent_method": rec.consent_method, "signature_sha256": rec.signature_sha256,
                    "signature_ref": rec.signature_ref, "witness": rec.witness, "signed_at": at.isoformat(),
                    "consent_ids": consent_ids}))
        s.commit()
