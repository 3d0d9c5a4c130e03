"""Consent records (R10.3.2): record, withdraw, list, and answer "may this patient's data be used for X?".

One way to do it for every edge (the registration desk, check-in, the API), so a
consent is always stored with what, when, by whom and for which purpose, and a
withdrawal never erases what was in force before it.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, col, select

from domain.consent_tables import ConsentRecord
from domain.tables import ExamOrder, Patient, User
from services.errors import Conflict, Invalid, NotFound


class ConsentScope(StrEnum):
    """What a patient consents to."""

    examination = "examination"  # the exam itself (e.g. contrast, interventional)
    contrast_agent = "contrast_agent"
    research = "research"  # de-identified data used for research
    teaching = "teaching"  # de-identified images used for teaching
    data_sharing = "data_sharing"  # records shared with another care provider
    ai_analysis = "ai_analysis"  # images analysed by AI software
    notification = "notification"  # results and reminders sent by SMS or app


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    scope: ConsentScope
    purpose: str = Field(min_length=4, max_length=2000, description="The purpose as explained to the patient")
    decision: str = Field("granted", pattern="^(granted|refused)$")
    method: str = Field(pattern="^(written|electronic|verbal_witnessed)$")
    given_at: datetime = Field(description="When the patient gave (or refused) consent")
    valid_until: datetime | None = None
    accession_number: str | None = Field(None, max_length=32)
    witness: str = Field("", max_length=200)
    document_ref: str = Field("", max_length=200, description="Scan or signed-form reference")

    @model_validator(mode="after")
    def _checks(self) -> "ConsentIn":
        if self.method == "verbal_witnessed" and not self.witness:
            raise ValueError("a verbal consent needs a witness")
        if self.valid_until is not None and aware(self.valid_until) <= aware(self.given_at):
            raise ValueError("valid_until must be after given_at")
        return self


class SignatureEvidence(BaseModel):
    """A handwritten signature behind a consent (R6.1.4): the stored image, the text signed, when,
    who signed and which staff member witnessed it. Built from a verified upload
    (services.consent_signatures.verify), never from what a caller claims."""

    signature_ref: str
    signature_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    notice_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    signed_at: datetime
    signer: str
    witness_user_id: str


def aware(dt: datetime) -> datetime:
    """Stored and compared as UTC; a time without an offset is taken as UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def record(session: Session, patient_id: str, body: ConsentIn, by: User, now: datetime,
           evidence: SignatureEvidence | None = None) -> ConsentRecord:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient {patient_id}")
    if aware(body.given_at) > aware(now):
        raise Invalid("given_at is in the future")
    if body.accession_number is not None:
        order = session.get(ExamOrder, body.accession_number)
        if order is None or order.patient_id != patient_id:
            raise Invalid(f"exam {body.accession_number} is not this patient's")
    row = ConsentRecord(
        id=str(uuid.uuid4()), patient_id=patient_id, scope=body.scope.value, purpose=body.purpose,
        decision=body.decision, method=body.method, accession_number=body.accession_number,
        given_at=aware(body.given_at), valid_until=aware(body.valid_until) if body.valid_until else None,
        recorded_by=by.id, recorder_role=by.role, witness=body.witness, document_ref=body.document_ref,
        recorded_at=aware(now),
    )
    if evidence is not None:
        row.signature_ref, row.signature_sha256, row.notice_sha256 = (
            evidence.signature_ref, evidence.signature_sha256, evidence.notice_sha256)
        row.signed_at, row.signer, row.witness_user_id = aware(evidence.signed_at), evidence.signer, evidence.witness_user_id
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def withdraw(session: Session, consent_id: str, reason: str, by: User, now: datetime) -> ConsentRecord:
    """Stamp the record withdrawn; a second withdrawal of the same record is a conflict, not a change."""
    row = session.get(ConsentRecord, consent_id)
    if row is None:
        raise NotFound(f"no consent record {consent_id}")
    if row.state == "withdrawn":
        raise Conflict(f"consent {consent_id} was already withdrawn at {aware(row.withdrawn_at).isoformat()}")  # type: ignore[arg-type]
    row.state, row.withdrawn_at, row.withdrawn_by, row.withdrawal_reason = "withdrawn", aware(now), by.id, reason
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def list_for(session: Session, patient_id: str, scope: ConsentScope | None = None) -> list[ConsentRecord]:
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"no patient {patient_id}")
    q = select(ConsentRecord).where(ConsentRecord.patient_id == patient_id)
    if scope is not None:
        q = q.where(ConsentRecord.scope == scope.value)
    return list(session.exec(q.order_by(col(ConsentRecord.given_at).desc(), col(ConsentRecord.recorded_at).desc())).all())


def in_force(session: Session, patient_id: str, scope: str, at: datetime) -> ConsentRecord | None:
    """The newest decision for `scope` given by `at` that is not withdrawn or past its validity."""
    at = aware(at)
    rows = session.exec(select(ConsentRecord).where(
        ConsentRecord.patient_id == patient_id, ConsentRecord.scope == scope, ConsentRecord.state == "active",
    ).order_by(col(ConsentRecord.given_at).desc(), col(ConsentRecord.recorded_at).desc())).all()
    for row in rows:
        if aware(row.given_at) <= at and (row.valid_until is None or aware(row.valid_until) > at):
            return row
    return None


def has_consent(session: Session, patient_id: str, scope: str, at: datetime) -> bool:
    """True only when the decision in force is "granted" (no record means no consent)."""
    row = in_force(session, patient_id, scope, at)
    return row is not None and row.decision == "granted"
