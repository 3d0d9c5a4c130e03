"""Critical values (R7.1.3): the closed loop's rows, and the clinician's acknowledgment with read-back."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from api.deps import CurrentUser, SessionDep, TemporalConnectorDep, actor_of, in_thread, require_roles
from api.errors import ErrorBody
from core.db import session_scope
from domain.enums import Role
from domain.loop import CriticalAck, CriticalStatus
from domain.tables import CriticalValue, NotificationAttempt, User
from services.errors import NotFound
from services.loop_commands import acknowledge_critical

router = APIRouter(prefix="/api/v1/critical-values", tags=["critical values"])

Clinician = Annotated[User, Depends(require_roles(Role.clinician))]


class CriticalValuePublic(BaseModel):
    id: str
    accession_number: str
    finding: str
    raised_by: str
    raised_at: datetime
    state: str
    level: int
    acked_at: datetime | None
    acked_by: str | None
    ack_name: str | None
    read_back: str | None
    ack_channel: str | None


class NotificationAttemptPublic(BaseModel):
    id: str
    purpose: str
    recipient: str
    channel: str
    attempted_at: datetime
    delivered: bool
    error: str | None


class CriticalValueDetail(CriticalValuePublic):
    notifications: list[NotificationAttemptPublic]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    clinician_name: str = Field(min_length=1, max_length=200)
    read_back: str = Field(min_length=1, max_length=2000, description="What the clinician heard, in their words")


def _public(row: CriticalValue) -> CriticalValuePublic:
    return CriticalValuePublic.model_validate(row.model_dump())


def _get(session: Session, cv_id: str) -> CriticalValue:
    row = session.get(CriticalValue, cv_id)
    if row is None:
        raise NotFound(f"no critical value {cv_id}")
    return row


@router.get("", response_model=list[CriticalValuePublic])
def list_critical_values(_user: CurrentUser, session: SessionDep, accession: str | None = None) -> list[CriticalValuePublic]:
    """Newest first; `accession` narrows to one exam."""
    stmt = select(CriticalValue).order_by(col(CriticalValue.raised_at).desc())
    if accession:
        stmt = stmt.where(CriticalValue.accession_number == accession)
    return [_public(r) for r in session.exec(stmt).all()]


@router.get("/{cv_id}", response_model=CriticalValueDetail, responses={404: {"model": ErrorBody}})
def get_critical_value(cv_id: str, _user: CurrentUser, session: SessionDep) -> CriticalValueDetail:
    """The critical value with every notification attempt, in the order they were made."""
    row = _get(session, cv_id)
    attempts = session.exec(
        select(NotificationAttempt)
        .where(NotificationAttempt.critical_value_id == cv_id)
        .order_by(col(NotificationAttempt.attempted_at))
    ).all()
    notes = [NotificationAttemptPublic.model_validate(a.model_dump()) for a in attempts]
    return CriticalValueDetail(**_public(row).model_dump(), notifications=notes)


def _exists(cv_id: str) -> None:
    with session_scope() as session:
        _get(session, cv_id)


@router.post(
    "/{cv_id}/ack",
    response_model=CriticalStatus,
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def acknowledge(cv_id: str, body: AckIn, user: Clinician, temporal: TemporalConnectorDep) -> CriticalStatus:
    """The clinician confirms receipt and reads the finding back; the critical-value loop records it."""
    await in_thread(_exists, cv_id)
    ack = CriticalAck(actor=actor_of(user), clinician_name=body.clinician_name, read_back=body.read_back)
    return await acknowledge_critical(await temporal.get(), cv_id, ack)
