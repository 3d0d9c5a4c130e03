"""Break-glass (R7.1.5): a clinician reaches an exam outside their patients, with a reason, flagged.

The grant is written to the audit trail before it counts (110113 Security Alert);
while the audit store cannot take it, the answer is 503 and nothing is opened.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import get_clock, in_thread, require
from api.errors import ErrorBody
from core.db import session_scope
from domain.tables import ExamOrder, User
from security.audit import AuditTrail
from security.need_to_know import BREAK_GLASS_TTL, break_glass_event
from security.permissions import Permission
from services.errors import NotFound

router = APIRouter(prefix="/api/v1/break-glass", tags=["auth"])

Clinician = Annotated[User, Depends(require(Permission.break_glass))]


class BreakGlassIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    accession_number: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=10, max_length=1000, description="Why this patient's exam is needed now")


class BreakGlassOut(BaseModel):
    accession_number: str
    expires_in_seconds: int
    audit_event: str = "110113"


def _exists(accession: str) -> None:
    with session_scope() as s:
        if s.get(ExamOrder, accession) is None:
            raise NotFound(f"no order with accession number {accession}")


@router.post("", response_model=BreakGlassOut, status_code=status.HTTP_201_CREATED,
             responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}})
async def break_glass(body: BreakGlassIn, user: Clinician, request: Request) -> BreakGlassOut:
    await in_thread(_exists, body.accession_number)
    source = request.client.host if request.client else ""
    event = break_glass_event(user, body.accession_number, body.reason, source, get_clock(request).now())
    trail: AuditTrail = request.app.state.audit_trail
    if not await in_thread(trail.store_now, event):
        refused = event.model_copy(update={"outcome": "failure", "detail": {**event.detail, "refused": "audit store down"}})
        await in_thread(trail.record, refused)  # spooled: the attempt is kept, and grants nothing
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="break-glass cannot be recorded right now (audit store down); nothing was opened")
    return BreakGlassOut(accession_number=body.accession_number,
                         expires_in_seconds=int(BREAK_GLASS_TTL.total_seconds()))
