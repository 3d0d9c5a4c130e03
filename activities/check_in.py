"""Check-in's reads and writes (R6.1.3, R6.1.4): what the exam requires signed, and the record
of the identity check, consents and notices once the registrar completes the task.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import Session, func, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.events import EventInput, write_event
from core.config import get_settings
from core.db import get_engine
from domain.consent_tables import ConsentRecord, ConsentSignature
from domain.booking.check_in import CheckInNeed, check_in_needs
from domain.scheduling import as_utc
from domain.tables import DomainEvent, ExamOrder, Patient, User
from security.audit import AuditEvent, AuditTrail, iso
from services import consent, consent_signatures
from services.booking_calendar import active_rules
from services.errors import Invalid, NotFound

SIGNATURE_INVALID = "SignatureInvalid"  # the ApplicationError type the loop reopens check-in on


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
    verify_signature: bool = Field(False, description="Loops after check-in-signature-image: the reference must "
                                   "name an uploaded image whose stored bytes still hash to signature_sha256")


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


def _signature(s: Session, rec: CheckInRecord) -> ConsentSignature | None:
    """The verified upload behind an electronic signature (loops after check-in-signature-image).

    A reference whose stored bytes no longer match is refused as `SignatureInvalid`, not retried:
    the loop reopens check-in with the reason instead of recording an unproven signature."""
    if not (rec.verify_signature and rec.signature_ref):
        return None
    try:
        return consent_signatures.verify(s, rec.signature_ref, rec.signature_sha256, rec.accession_number,
                                         rec.signed, get_settings().data_dir)
    except Invalid as err:
        raise ApplicationError(err.reason, type=SIGNATURE_INVALID, non_retryable=True) from None


def _audit(rec: CheckInRecord, by: User, upload: ConsentSignature, consent_ids: list[str]) -> None:
    """One audit record per signed check-in (R6.1.4 "audited"); a retry stores it once (same UUID)."""
    AuditTrail.from_settings().record(AuditEvent(
        event_uuid=uuid.uuid5(uuid.NAMESPACE_URL, f"radloop:consent-signature/{rec.key}").hex,
        occurred_at=iso(as_utc(rec.at)), user_id=by.id, username=by.username, role=by.role, source="worker",
        event_type="consent_signed", event_id="110110", action="C", object_type="accession",
        object_id=rec.accession_number, outcome="success",
        detail={"signature_ref": upload.id, "signature_sha256": upload.sha256, "notice_sha256": upload.notice_sha256,
                "signed": rec.signed, "signer": upload.signer, "witness_user_id": by.id, "consent_ids": consent_ids}))


@activity.defn
def record_check_in(rec: CheckInRecord) -> None:
    """The contrast consent becomes a consent record (services.consent, R10.3.2); the notices and
    the identity check are on the check-in event with the signature hash and time. Idempotent by key.
    A handwritten signature is verified against its stored image first, named on the consent
    record with the signed text's hash, signer and witness, and audited."""
    at = as_utc(rec.at)
    with Session(get_engine()) as s:
        if s.get(DomainEvent, rec.key) is not None:
            return
        order = s.get(ExamOrder, rec.accession_number)
        by = s.get(User, rec.actor)
        if order is None or by is None:
            raise NotFound(f"no order {rec.accession_number} or user {rec.actor}")
        upload = _signature(s, rec)
        evidence = None if upload is None else consent.SignatureEvidence(
            signature_ref=upload.id, signature_sha256=upload.sha256, notice_sha256=upload.notice_sha256,
            signed_at=at, signer=upload.signer, witness_user_id=by.id)
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
                witness=rec.witness, document_ref=rec.signature_ref or (rec.signature_sha256 or "")), by, at,
                evidence)
            consent_ids.append(row.id)
        if upload is not None:  # before the event that ends the retries: a retry re-audits under the same UUID
            _audit(rec, by, upload, consent_ids)
        write_event(s, EventInput(
            key=rec.key, accession_number=rec.accession_number, at=at, actor=rec.actor, kind="checked_in",
            summary=f"identity checked ({rec.identity_document_type}); signed: {', '.join(rec.signed) or 'nothing required'}",
            detail={"identity_document_type": rec.identity_document_type, "signed": rec.signed,
                    "consent_method": rec.consent_method, "signature_sha256": rec.signature_sha256,
                    "signature_ref": rec.signature_ref, "witness": rec.witness, "signed_at": at.isoformat(),
                    "consent_ids": consent_ids, **({} if upload is None else {
                        "notice_sha256": upload.notice_sha256, "signer": upload.signer, "witness_user_id": by.id})}))
        s.commit()
