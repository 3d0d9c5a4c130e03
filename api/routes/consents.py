"""Consent records (R10.3.2): record, list and withdraw a patient's consent to a use of their data.

Recorded where the patient is met (registration, check-in, the exam room);
withdrawing keeps the record and stamps who withdrew it, when and why. Checks
that need a consent (research and teaching exports) read services.consent.
A clinician reads and writes only their own patients' consents (need to know,
security.need_to_know.patient_access_basis); beyond them only after breaking the
glass, and every such request is flagged in its audit record.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, check_patient_access, get_clock, patient_record_scope, require
from api.errors import ErrorBody, InvalidBody
from domain.consent_tables import ConsentRecord
from domain.tables import User
from security.permissions import Permission
from services import consent as svc
from services.consent import ConsentIn, ConsentScope

router = APIRouter(prefix="/api/v1", tags=["consent"])

Recorder = Annotated[User, Depends(require(Permission.consent_record))]
Reader = Annotated[User, Depends(require(Permission.consent_read))]
_REFUSALS = {403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}}
_IN_SCOPE = [Depends(patient_record_scope)]


class ConsentPublic(BaseModel):
    id: str
    patient_id: str
    scope: str
    purpose: str
    decision: str
    method: str
    accession_number: str | None
    given_at: datetime
    valid_until: datetime | None
    recorded_by: str
    recorder_role: str
    witness: str
    document_ref: str
    recorded_at: datetime
    state: str
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    withdrawal_reason: str
    signature_ref: str | None = None
    signature_sha256: str | None = None
    notice_sha256: str | None = None
    signed_at: datetime | None = None
    signer: str = ""
    witness_user_id: str | None = None

    @classmethod
    def of(cls, r: ConsentRecord) -> "ConsentPublic":
        return cls.model_validate(r, from_attributes=True)


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=2, max_length=1000)


@router.post("/patients/{patient_id}/consents", response_model=ConsentPublic, status_code=status.HTTP_201_CREATED,
             dependencies=_IN_SCOPE, responses={**_REFUSALS, 422: {"model": InvalidBody}})
def record_consent(patient_id: str, body: ConsentIn, user: Recorder, session: SessionDep, request: Request) -> ConsentPublic:
    """Record what the patient agreed to (or refused), when, for which purpose; the caller is the recorder."""
    return ConsentPublic.of(svc.record(session, patient_id, body, user, get_clock(request).now()))


@router.get("/patients/{patient_id}/consents", response_model=list[ConsentPublic], dependencies=_IN_SCOPE,
            responses=_REFUSALS)
def list_consents(patient_id: str, user: Reader, session: SessionDep, scope: ConsentScope | None = None) -> list[ConsentPublic]:
    """Every consent record of the patient, newest first, withdrawn ones included."""
    return [ConsentPublic.of(r) for r in svc.list_for(session, patient_id, scope)]


@router.post("/consents/{consent_id}/withdraw", response_model=ConsentPublic, responses=_REFUSALS)
def withdraw_consent(consent_id: str, body: WithdrawIn, user: Recorder, session: SessionDep, request: Request) -> ConsentPublic:
    """Stamp the record withdrawn (it stays); the caller must be allowed to see the record's patient."""
    row = session.get(ConsentRecord, consent_id)
    if row is not None:
        check_patient_access(row.patient_id, request, user)
    return ConsentPublic.of(svc.withdraw(session, consent_id, body.reason, user, get_clock(request).now()))
