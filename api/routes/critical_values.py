"""Critical values (R7.1.3, R8.7): raise, acknowledge with read-back, outcome, compliance metrics."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from api.deps import SessionDep, TemporalConnectorDep, actor_of, get_clock, in_thread, require
from api.errors import ErrorBody
from core.db import session_scope
from activities.critical import current_dictionary
from domain.charts import weekly_compliance_svg
from domain.critical_text import Suggestion, suggest
from domain.critical_metrics import CSV_COLUMNS, CriticalFacts, CriticalMetrics, compute, csv_row
from security import need_to_know
from security.permissions import Permission
from domain.loop import ActionAck, CriticalAck, CriticalRaise, CriticalStatus
from domain.tables import CriticalValue, ExamOrder, NotificationAttempt, User
from services.errors import Invalid, NotFound
from services.loop_commands import acknowledge_critical, raise_critical

router = APIRouter(prefix="/api/v1/critical-values", tags=["critical values"])

Reader = Annotated[User, Depends(require(Permission.critical_value_read))]
Clinician = Annotated[User, Depends(require(Permission.critical_value_ack))]
Raiser = Annotated[User, Depends(require(Permission.critical_value_raise))]
QualityOffice = Annotated[User, Depends(require(Permission.quality_metrics_read))]
OutcomeRecorder = Annotated[User, Depends(require(Permission.critical_outcome_record))]


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
    item_code: str | None = None
    dictionary_version: int | None = None
    needs_verification: bool = False
    verified_by: str | None = None
    first_notified_at: datetime | None = None
    escalations: int = 0
    action_taken: str | None = None
    closed_at: datetime | None = None
    outcome: str | None = None


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


def _basis(session: Session, user: User, row: CriticalValue, request: Request) -> str | None:
    if user.role not in need_to_know.SCOPED_ROLES:
        return "role"
    return need_to_know.critical_value_basis(session, user, row.accession_number, row.id, get_clock(request).now())


@router.get("", response_model=list[CriticalValuePublic])
def list_critical_values(user: Reader, session: SessionDep, request: Request, accession: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100,
                         offset: Annotated[int, Query(ge=0)] = 0) -> list[CriticalValuePublic]:
    """Newest first, `limit` at a time from `offset`; `accession` narrows to one exam. A clinician
    sees those of their own patients and those they were paged for (need to know, R7.1.5): the
    database filters, so a page is full and no hidden row is read."""
    stmt = (select(CriticalValue)
            .join(ExamOrder, col(ExamOrder.accession_number) == CriticalValue.accession_number, isouter=True)
            .where(need_to_know.visible_critical_values(user, get_clock(request).now()))
            .order_by(col(CriticalValue.raised_at).desc(), col(CriticalValue.id))
            .offset(offset).limit(limit))
    if accession:
        stmt = stmt.where(CriticalValue.accession_number == accession)
    return [_public(r) for r in session.exec(stmt).all()]


class RaiseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    accession_number: str = Field(min_length=1, max_length=32)
    finding: str = Field(min_length=1, max_length=200)
    item_code: str | None = Field(None, max_length=64, description="Dictionary item; omitted -> matched by text")


@router.post("", response_model=ActionAck, status_code=202,
             responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def raise_critical_value(body: RaiseIn, user: Raiser, temporal: TemporalConnectorDep) -> ActionAck:
    """Whoever finds a critical value first raises it (R7.1.3 (3)); a junior's goes to a senior to verify.

    The reply's `detail` is the new critical value's ID.
    """
    if body.item_code is not None:
        _version, items = await in_thread(current_dictionary)
        if body.item_code not in {i.code for i in items}:
            raise Invalid(f"unknown critical-value dictionary item {body.item_code!r}")
    req = CriticalRaise(actor=actor_of(user), finding=body.finding, item_code=body.item_code)
    return await raise_critical(await temporal.get(), body.accession_number, req)


class SuggestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20000)
    modality: str | None = Field(None, pattern=r"^[A-Z]{2,4}$")


@router.post("/suggestions", response_model=list[Suggestion])
async def suggestions(body: SuggestIn, _user: Raiser) -> list[Suggestion]:
    """Dictionary items the report text mentions, not negated ("未见气胸" is no pneumothorax).

    Only a prompt: raising a critical value stays a human decision (R8.7.2).
    """
    _version, items = await in_thread(current_dictionary)
    return suggest(body.text, items, body.modality)


def _facts(since: datetime | None, until: datetime | None) -> list[CriticalFacts]:
    with session_scope() as session:
        stmt = select(CriticalValue)
        if since:
            stmt = stmt.where(CriticalValue.raised_at >= since)
        if until:
            stmt = stmt.where(CriticalValue.raised_at < until)
        return [CriticalFacts.model_validate(r.model_dump()) for r in session.exec(stmt).all()]


Since = Annotated[datetime | None, Query(alias="from", description="Raised at or after (ISO 8601)")]
Until = Annotated[datetime | None, Query(alias="to", description="Raised before (ISO 8601)")]


@router.get("/metrics", response_model=CriticalMetrics, responses={200: {"content": {"text/csv": {}}}})
async def metrics(_user: QualityOffice, since: Since = None, until: Until = None,
                  format: Literal["json", "csv"] = "json") -> CriticalMetrics | Response:
    """Compliance (R8.7): notified within 10 minutes, time to ack p50/p90/p99, by department and reader,
    out-of-compliance list with reasons, escalations, concordance; `format=csv` gives one row per value."""
    rows = await in_thread(_facts, since, until)
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(r) for r in sorted(rows, key=lambda r: r.raised_at))
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="critical-values.csv"'})
    return compute(rows, datetime.now(timezone.utc))


@router.get("/metrics/weekly.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
async def weekly_chart(_user: QualityOffice, since: Since = None, until: Until = None) -> Response:
    """Share notified within 10 minutes and median time to acknowledgment, per week, as SVG."""
    m = compute(await in_thread(_facts, since, until), datetime.now(timezone.utc))
    svg = weekly_compliance_svg([w.week_start for w in m.weekly], [w.notified_within_10_rate for w in m.weekly],
                                [w.ack_p50_seconds for w in m.weekly], "危急值 10 分钟通报率 / Critical values notified within 10 min")
    return Response(svg, media_type="image/svg+xml")


@router.get("/report", response_class=HTMLResponse)
async def report_page(_user: QualityOffice, since: Since = None, until: Until = None) -> HTMLResponse:
    """The quality office's page: the chart, the headline figures and what was out of compliance."""
    from api.pages import render

    m = compute(await in_thread(_facts, since, until), datetime.now(timezone.utc))
    svg = weekly_compliance_svg([w.week_start for w in m.weekly], [w.notified_within_10_rate for w in m.weekly],
                                [w.ack_p50_seconds for w in m.weekly], "危急值 10 分钟通报率 / Critical values notified within 10 min")
    return HTMLResponse(render("critical_report.html", m=m, svg=svg))


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    outcome: Literal["confirmed", "not_confirmed"]
    note: str = Field("", max_length=2000)


def _record_outcome(cv_id: str, body: OutcomeIn, user_id: str) -> CriticalValuePublic:
    with session_scope() as session:
        row = _get(session, cv_id)
        row.outcome, row.outcome_note, row.outcome_at = body.outcome, body.note or None, datetime.now(timezone.utc)
        session.add(row)
        session.flush()
        return _public(row)


@router.post("/{cv_id}/outcome", response_model=CriticalValuePublic, responses={404: {"model": ErrorBody}})
async def record_outcome(cv_id: str, body: OutcomeIn, user: OutcomeRecorder) -> CriticalValuePublic:
    """Concordance (R8.7): whether the later clinical outcome confirmed the critical finding."""
    return await in_thread(_record_outcome, cv_id, body, user.id)


@router.get("/{cv_id}", response_model=CriticalValueDetail,
            responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}})
def get_critical_value(cv_id: str, user: Reader, session: SessionDep, request: Request) -> CriticalValueDetail:
    """The critical value with every notification attempt, in the order they were made. A clinician
    outside the exam's need to know who was not paged for it is refused (403, break the glass)."""
    row = _get(session, cv_id)
    basis = _basis(session, user, row, request)
    if basis is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"critical value {cv_id} is not one of your department's patients and you were "
                            "not paged for it; to see it in an emergency, break the glass (POST /api/v1/break-glass "
                            "with its accession number) with a reason")
    request.state.access_basis = basis
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
