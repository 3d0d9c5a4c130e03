"""Break-glass (R7.1.5): a clinician reaches an exam outside their patients, with a reason, flagged.

The grant names one exam (`accession_number`) or one patient (`patient_id`, for the
records kept per patient such as consents; a grant for one of the patient's exams
opens those too). It is written to the audit trail before it counts (110113
Security Alert); while the audit store cannot take it, the answer is 503 and
nothing is opened.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import get_clock, in_thread, require
from api.errors import ErrorBody, InvalidBody
from core.db import session_scope
from domain.tables import ExamOrder, Patient, User
from security.audit import AuditTrail
from security.need_to_know import BREAK_GLASS_TTL, break_glass_event
from security.permissions import Permission
from services.errors import NotFound

router = APIRouter(prefix="/api/v1/break-glass", tags=["auth"])

Clinician = Annotated[User, Depends(require(Permission.break_glass))]


class BreakGlassIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    accession_number: str | None = Field(None, min_length=1, max_length=32, description="The exam to open")
    patient_id: str | None = Field(None, min_length=1, max_length=64, description="Or the patient whose records to open")
    reason: str = Field(min_length=10, max_length=1000, description="Why this patient's exam is needed now")

    @model_validator(mode="after")
    def _one_target(self) -> "BreakGlassIn":
        if (self.accession_number is None) == (self.patient_id is None):
            raise ValueError("name exactly one of accession_number or patient_id")
        return self


class BreakGlassOut(BaseModel):
    accession_number: str | None = None
    patient_id: str | None = None
    expires_in_seconds: int
    audit_event: str = "110113"


def _exists(body: BreakGlassIn) -> None:
    with session_scope() as s:
        if body.accession_number is not None and s.get(ExamOrder, body.accession_number) is None:
            raise NotFound(f"no order with accession number {body.accession_number}")
        if body.patient_id is not None and s.get(Patient, body.patient_id) is None:
            raise NotFound(f"no patient {body.patient_id}")


@router.post("", response_model=BreakGlassOut, status_code=status.HTTP_201_CREATED,
             responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": InvalidBody},
                        503: {"model": ErrorBody}})
async def break_glass(body: BreakGlassIn, user: Clinician, request: Request) -> BreakGlassOut:
    await in_thread(_exists, body)
    source = request.client.host if request.client else ""
    target, kind = (body.accession_number, "accession") if body.accession_number else (body.patient_id, "patient")
    event = break_glass_event(user, target or "", body.reason, source, get_clock(request).now(), kind)  # type: ignore[arg-type]
    trail: AuditTrail = request.app.state.audit_trail
    if not await in_thread(trail.store_now, event):
        refused = event.model_copy(update={"outcome": "failure", "detail": {**event.detail, "refused": "audit store down"}})
        await in_thread(trail.record, refused)  # spooled: the attempt is kept, and grants nothing
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="break-glass cannot be recorded right now (audit store down); nothing was opened")
    return BreakGlassOut(accession_number=body.accession_number, patient_id=body.patient_id,
                         expires_in_seconds=int(BREAK_GLASS_TTL.total_seconds()))
