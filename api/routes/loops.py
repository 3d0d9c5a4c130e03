"""One exam loop seen whole: its status, timeline, reports, and actions on it.

Actions are Temporal updates (`services.loop_commands`): the actor comes from the
authenticated user, never from the body, and the loop's validators decide.
"""
from __future__ import annotations

import difflib
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from api.deps import SessionDep, TemporalClientDep, TemporalConnectorDep, actor_of, patient_scope, require
from api.errors import ErrorBody, TemporalUnavailable
from api.timeline import Timeline, build_timeline
from domain.loop import (
    ActionAck,
    CancelRequest,
    CorrectionRequest,
    ExamEvent,
    LoopStatus,
    RescheduleRequest,
)
from domain.tables import ExamOrder, ReportVersion, User
from security.permissions import Permission
from services import loop_commands
from services.errors import NotFound

# Every route here names one exam: a clinician reaches it only within their patients (R7.1.5).
router = APIRouter(prefix="/api/v1/loops", tags=["loops"], dependencies=[Depends(patient_scope)])

# Actions take the connector, not a client: who may act (403) and what was sent (422) are
# answered before Temporal is needed, so only a valid request can meet a 503.

_ACTION_REFUSALS: dict[int | str, dict] = {
    403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody},
}

LoopReader = Annotated[User, Depends(require(Permission.loop_read))]
ReportReader = Annotated[User, Depends(require(Permission.report_read))]
Technologist = Annotated[User, Depends(require(Permission.exam_event_record))]
Rescheduler = Annotated[User, Depends(require(Permission.loop_reschedule))]
Canceller = Annotated[User, Depends(require(Permission.loop_cancel))]
CorrectionRequester = Annotated[User, Depends(require(Permission.correction_request))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ExamEventIn(_Body):
    """An ExamEvent as a technologist posts it; who did it is the caller."""

    kind: Literal["started", "completed", "discontinued"]
    method: str | None = Field(None, max_length=200)
    contrast_used: bool = False
    contrast_agent: str | None = Field(None, max_length=100)
    contrast_volume_ml: float | None = Field(None, ge=0, le=500)
    reason: str | None = Field(None, max_length=1000)


class RescheduleIn(_Body):
    reason: str = Field(min_length=1, max_length=1000)
    not_before: datetime | None = None


class ReasonIn(_Body):
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/{accession}", response_model=LoopStatus, responses={404: {"model": ErrorBody}})
async def loop_status(accession: str, _user: LoopReader, client: TemporalClientDep) -> LoopStatus:
    """Where the loop stands, as the loop itself answers (status query)."""
    return await loop_commands.loop_status(client, accession)


@router.get("/{accession}/timeline", response_model=Timeline, responses={404: {"model": ErrorBody}})
async def timeline(accession: str, _user: LoopReader, connector: TemporalConnectorDep) -> Timeline:
    """Temporal history and business events merged in time; business events alone if Temporal is down."""
    try:
        client = await connector.get()
    except TemporalUnavailable:
        client = None
    return await build_timeline(client, accession)


@router.post("/{accession}/exam-events", response_model=ActionAck, responses=_ACTION_REFUSALS)
async def exam_event(accession: str, body: ExamEventIn, user: Technologist, temporal: TemporalConnectorDep) -> ActionAck:
    event = ExamEvent(actor=actor_of(user), source="api", **body.model_dump())
    return await loop_commands.record_exam_event(await temporal.get(), accession, event)


@router.post("/{accession}/reschedule", response_model=ActionAck, responses=_ACTION_REFUSALS)
async def reschedule(accession: str, body: RescheduleIn, user: Rescheduler, temporal: TemporalConnectorDep) -> ActionAck:
    req = RescheduleRequest(actor=actor_of(user), reason=body.reason, not_before=body.not_before)
    return await loop_commands.reschedule(await temporal.get(), accession, req)


@router.post("/{accession}/cancel", response_model=ActionAck, responses=_ACTION_REFUSALS)
async def cancel(accession: str, body: ReasonIn, user: Canceller, temporal: TemporalConnectorDep) -> ActionAck:
    return await loop_commands.cancel(await temporal.get(), accession, CancelRequest(actor=actor_of(user), reason=body.reason))


@router.post("/{accession}/corrections", response_model=ActionAck, responses=_ACTION_REFUSALS)
async def request_correction(
    accession: str, body: ReasonIn, user: CorrectionRequester, temporal: TemporalConnectorDep
) -> ActionAck:
    """Ask for a signed report to be corrected (R7.1.4); review and amendment follow as tasks."""
    req = CorrectionRequest(actor=actor_of(user), reason=body.reason)
    return await loop_commands.request_correction(await temporal.get(), accession, req)


# ---- reports ------------------------------------------------------------------------


class ReportVersionPublic(BaseModel):
    version: int
    tier: str
    status: str
    source: str
    author_id: str
    author_role: str
    created_at: datetime
    signed_by: str | None
    signed_at: datetime | None
    recalled_at: datetime | None
    recall_reason: str | None
    critical: bool
    critical_finding: str | None
    comment: str | None
    findings: str
    impression: str
    recommendation: str


class FieldDiff(BaseModel):
    field: str
    changed: bool
    diff: str = Field(description="Unified diff (difflib) of the field's text")


class ReportDiff(BaseModel):
    accession_number: str
    from_version: int
    to_version: int
    fields: list[FieldDiff]


DIFF_FIELDS = ("findings", "impression", "recommendation", "critical_finding", "comment")


def _versions(session: Session, accession: str) -> list[ReportVersion]:
    if session.get(ExamOrder, accession) is None:
        raise NotFound(f"no order with accession number {accession}")
    return list(
        session.exec(
            select(ReportVersion).where(ReportVersion.accession_number == accession).order_by(col(ReportVersion.version))
        ).all()
    )


def _public(v: ReportVersion) -> ReportVersionPublic:
    return ReportVersionPublic.model_validate(v.model_dump())


@router.get("/{accession}/reports", response_model=list[ReportVersionPublic], responses={404: {"model": ErrorBody}})
def reports(accession: str, _user: ReportReader, session: SessionDep) -> list[ReportVersionPublic]:
    """Every version of the report, oldest first: drafts, signed, recalled (revision trace, R4.2.6)."""
    return [_public(v) for v in _versions(session, accession)]


def field_diff(name: str, old: str | None, new: str | None, from_v: int, to_v: int) -> FieldDiff:
    a, b = (old or "").splitlines(), (new or "").splitlines()
    lines = difflib.unified_diff(a, b, fromfile=f"v{from_v}/{name}", tofile=f"v{to_v}/{name}", lineterm="")
    return FieldDiff(field=name, changed=a != b, diff="\n".join(lines))


@router.get("/{accession}/reports/diff", response_model=ReportDiff, responses={404: {"model": ErrorBody}})
def report_diff(
    accession: str,
    _user: ReportReader,
    session: SessionDep,
    from_version: Annotated[int, Query(alias="from", ge=1)],
    to_version: Annotated[int, Query(alias="to", ge=1)],
) -> ReportDiff:
    """What changed between two versions, field by field."""
    by_version = {v.version: v for v in _versions(session, accession)}
    missing = [n for n in (from_version, to_version) if n not in by_version]
    if missing:
        raise NotFound(f"accession {accession} has no report version {missing[0]}")
    old, new = by_version[from_version], by_version[to_version]
    return ReportDiff(
        accession_number=accession,
        from_version=from_version,
        to_version=to_version,
        fields=[field_diff(f, getattr(old, f), getattr(new, f), from_version, to_version) for f in DIFF_FIELDS],
    )
