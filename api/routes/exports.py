"""Bulk export of personal data (R10.3.4): request with a purpose, approval by someone else, download.

The approval is the ExportApproval workflow; these routes start it, hand the
approver's decision to it (its validator refuses a requester approving their own
request) and serve the de-identified package to its requester while the link
lives. A download that is not allowed (not approved, not yours, expired) is
refused and leaves its own audit record with the reason.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import TemporalConnectorDep, actor_of, get_clock, in_thread, require
from api.errors import ErrorBody, InvalidBody
from core.config import get_settings
from core.db import session_scope
from domain.enums import Role, TaskState, TaskType
from domain.export_tables import DataExport
from domain.exports import EXPORT_APPROVAL_WORKFLOW, EXPORT_EVENT_ID, ExportInput, ExportUse, export_workflow_id
from domain.loop import TaskCompletion
from domain.tables import ExamOrder, HumanTask, User
from domain.task_forms import ExportApprovalForm
from security import need_to_know
from security.audit import AuditEvent, AuditTrail
from security.permissions import Permission
from services import exports as svc
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.loop_commands import complete_task

log = logging.getLogger("radloop.exports")
router = APIRouter(prefix="/api/v1/exports", tags=["exports"])

Requester = Annotated[User, Depends(require(Permission.export_request))]
Reader = Annotated[User, Depends(require(Permission.export_read))]
Approver = Annotated[User, Depends(require(Permission.export_approve))]
Downloader = Annotated[User, Depends(require(Permission.export_download))]
# Who sees every export, not only their own.
OVERSEERS = {Role.manager}
_REFUSALS = {403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}}


class ExportRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    purpose: str = Field(min_length=10, max_length=2000, description="Why the data is needed, for the approver")
    use: ExportUse
    accession_numbers: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        min_length=1, max_length=svc.MAX_EXAMS)
    include_images: bool = True
    download_hours: int = Field(24, ge=1, le=168, description="How long the link lives once approved")
    request_key: str | None = Field(None, max_length=100, description="Resending the same key returns the same export")


class ExportPublic(BaseModel):
    id: str
    workflow_id: str
    state: str
    purpose: str
    use: str
    requested_by: str
    exams: int
    include_images: bool
    approver_id: str | None
    decision_reason: str
    decided_at: datetime | None
    records: int
    instances: int
    excluded: dict[str, int]
    ready_at: datetime | None
    expires_at: datetime | None
    download_count: int
    created_at: datetime
    download_url: str | None

    @classmethod
    def of(cls, r: DataExport) -> "ExportPublic":
        return cls(
            id=r.id, workflow_id=r.workflow_id, state=r.state, purpose=r.purpose, use=r.use, requested_by=r.requested_by,
            exams=len(r.accession_numbers), include_images=r.include_images, approver_id=r.approver_id,
            decision_reason=r.decision_reason, decided_at=r.decided_at, records=r.records, instances=r.instances,
            excluded=r.excluded, ready_at=r.ready_at, expires_at=r.expires_at, download_count=r.download_count,
            created_at=r.created_at, download_url=f"/api/v1/exports/{r.id}/download" if r.state == "ready" else None,
        )


class DecisionOut(BaseModel):
    export_id: str
    task_id: str
    decision: str
    accepted: bool = True


# ---- request ----------------------------------------------------------------------------------


def _check_scope(accessions: list[str], user: User, now: datetime) -> None:
    """Every exam exists, and a clinician asks only for their own patients (break-glass does not count)."""
    with session_scope() as s:
        found = set(s.exec(select(ExamOrder.accession_number).where(col(ExamOrder.accession_number).in_(accessions))).all())
        unknown = [a for a in accessions if a not in found]
        if unknown:
            raise Invalid(f"unknown accession numbers: {', '.join(unknown[:20])}")
        if user.role in need_to_know.SCOPED_ROLES:
            outside = [a for a in accessions if need_to_know.access_basis(s, user, a, now) in (None, "break_glass")]
            if outside:
                raise Forbidden(f"not your department's patients: {', '.join(outside[:20])}")


def _insert(inp: ExportInput, now: datetime) -> tuple[DataExport, bool]:
    with session_scope() as s:
        try:
            row, created = svc.ensure_row(s, inp, now)
            s.commit()
        except IntegrityError:
            s.rollback()
            row, created = s.get(DataExport, inp.export_id), False
        return row, created  # type: ignore[return-value]


def _delete(export_id: str) -> None:
    with session_scope() as s:
        if (row := s.get(DataExport, export_id)) is not None:
            s.delete(row)
            s.commit()


async def _start(client: Client, inp: ExportInput) -> None:
    try:
        await client.start_workflow(
            EXPORT_APPROVAL_WORKFLOW, inp, id=export_workflow_id(inp.export_id),
            task_queue=get_settings().temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        # A resent request for an export whose workflow has already ended: the stored row answers
        # (REJECT_DUPLICATE), the export is not run a second time.
        log.info("export %s already ran; not restarted", inp.export_id)


@router.post("", response_model=ExportPublic, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": ExportPublic, "description": "The same request_key was sent before"},
                        **_REFUSALS, 422: {"model": InvalidBody}, 503: {"model": ErrorBody}})
async def request_export(body: ExportRequestIn, user: Requester, request: Request, response: Response,
                         connector: TemporalConnectorDep) -> ExportPublic:
    """Ask for a de-identified export; it waits for a manager who is not the requester."""
    now = get_clock(request).now()
    accessions = list(dict.fromkeys(body.accession_numbers))
    await in_thread(_check_scope, accessions, user, now)
    inp = ExportInput(export_id=svc.new_export_id(user.id, body.request_key), requested_by=actor_of(user),
                      purpose=body.purpose, use=body.use, accession_numbers=accessions,
                      include_images=body.include_images, download_seconds=body.download_hours * 3600)
    row, created = await in_thread(_insert, inp, now)
    if not created and row.requested_by != user.id:
        raise Conflict("that request key belongs to another export")
    try:
        await _start(await connector.get(), inp if created else inp.model_copy(update={
            "purpose": row.purpose, "use": ExportUse(row.use), "accession_numbers": row.accession_numbers,
            "include_images": row.include_images}))
    except Exception:
        if created:
            await in_thread(_delete, inp.export_id)  # nothing half-made stays behind; the client retries
        raise
    if not created:
        response.status_code = status.HTTP_200_OK
    return ExportPublic.of(row)


# ---- reading ----------------------------------------------------------------------------------


def _list(user: User) -> list[ExportPublic]:
    with session_scope() as s:
        q = select(DataExport).order_by(col(DataExport.created_at).desc()).limit(200)
        if user.role not in OVERSEERS:
            q = q.where(DataExport.requested_by == user.id)
        return [ExportPublic.of(r) for r in s.exec(q).all()]


def _get(export_id: str, user: User) -> ExportPublic:
    with session_scope() as s:
        row = s.get(DataExport, export_id)
        if row is None or (user.role not in OVERSEERS and row.requested_by != user.id):
            raise NotFound(f"no export {export_id} of yours")
        return ExportPublic.of(row)


@router.get("", response_model=list[ExportPublic])
async def list_exports(user: Reader) -> list[ExportPublic]:
    """The caller's exports, newest first (managers see every export)."""
    return await in_thread(_list, user)


@router.get("/{export_id}", response_model=ExportPublic, responses=_REFUSALS)
async def get_export(export_id: str, user: Reader) -> ExportPublic:
    return await in_thread(_get, export_id, user)


# ---- decision ---------------------------------------------------------------------------------


def _open_task(export_id: str) -> str:
    with session_scope() as s:
        row = s.get(DataExport, export_id)
        if row is None:
            raise NotFound(f"no export {export_id}")
        task = s.exec(select(HumanTask).where(
            HumanTask.workflow_id == row.workflow_id, HumanTask.task_type == TaskType.export_approval.value,
            col(HumanTask.state).in_([TaskState.open.value, TaskState.claimed.value]))).first()
        if task is None:
            raise Conflict(f"export {export_id} is not waiting for a decision (state {row.state})")
        return task.id


@router.post("/{export_id}/decision", response_model=DecisionOut, responses={**_REFUSALS, 422: {"model": InvalidBody}})
async def decide(export_id: str, body: ExportApprovalForm, user: Approver, connector: TemporalConnectorDep) -> DecisionOut:
    """Approve or reject; the requester cannot decide on their own request (403)."""
    task_id = await in_thread(_open_task, export_id)
    client = await connector.get()
    await complete_task(client, export_workflow_id(export_id),
                        TaskCompletion(task_id=task_id, actor=actor_of(user), data=body.model_dump()))
    return DecisionOut(export_id=export_id, task_id=task_id, decision=body.decision)


# ---- download ---------------------------------------------------------------------------------


def _take(export_id: str, user: User, now: datetime) -> tuple[BinaryIO, str, str]:
    """Check the rule, open the file and count the download: (open file, file name, sha256).

    The file is opened here, so an expiry that deletes it meanwhile cannot cut the download short.
    """
    with session_scope() as s:
        row, path = svc.downloadable(s, export_id, user.id, now, get_settings().data_dir)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the response's iterator
        except FileNotFoundError:
            raise svc.Gone(f"the file of export {export_id} is no longer there") from None
        row.download_count += 1
        row.last_downloaded_at = now
        s.add(row)
        s.commit()
        return f, row.file_name or path.name, row.sha256 or ""


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(1 << 20):
            yield chunk


def _audit(request: Request, user: User, export_id: str, outcome: str, detail: dict) -> None:
    trail: AuditTrail = request.app.state.audit_trail
    trail.record(AuditEvent(
        user_id=user.id, username=user.username, role=user.role, source=request.client.host if request.client else "",
        event_type="export_downloaded" if outcome == "success" else "export_download_refused",
        event_id=EXPORT_EVENT_ID, action="R", object_type="export", object_id=export_id,
        outcome=outcome, detail=detail,  # type: ignore[arg-type]
    ))


@router.get("/{export_id}/download", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}}, **_REFUSALS, 410: {"model": ErrorBody}})
async def download(export_id: str, user: Downloader, request: Request) -> StreamingResponse:
    """The requester's package while its link lives; anything else is refused and audited."""
    try:
        f, name, digest = await in_thread(_take, export_id, user, get_clock(request).now())
    except svc.Gone as gone:
        await in_thread(_audit, request, user, export_id, "failure", {"reason": gone.reason, "status": 410})
        raise HTTPException(status.HTTP_410_GONE, detail=gone.reason) from None
    except (Forbidden, NotFound) as refused:
        await in_thread(_audit, request, user, export_id, "failure", {"reason": refused.reason})
        raise
    await in_thread(_audit, request, user, export_id, "success", {"sha256": digest})
    return StreamingResponse(_chunks(f), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "X-Content-SHA256": digest})
