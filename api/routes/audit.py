"""The audit trail for auditors (R10.5): search, export as CSV, verify the chain.

Only the auditor holds `audit_read`; every search, export and verification is
itself an audit record (event 110101 Audit Log Used), written by the audit
middleware like any other audited request.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import col, func, select

from api.deps import SessionDep, require
from core.config import get_settings
from domain.security_tables import AuditRecord
from domain.tables import User
from security.audit import VerifyResult, iso, verify_chain
from security.permissions import Permission

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[User, Depends(require(Permission.audit_read))]

CSV_COLUMNS = ("seq", "occurred_at", "user_id", "username", "role", "source", "event_type", "event_id", "action",
               "object_type", "object_id", "outcome", "detail", "hash")


class AuditRecordPublic(BaseModel):
    seq: int
    occurred_at: str
    recorded_at: str
    user_id: str | None
    username: str | None
    role: str | None
    source: str
    event_type: str
    event_id: str
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRecordPublic]
    total: int
    limit: int
    offset: int


def _conditions(since: datetime | None, until: datetime | None, username: str | None, event_type: str | None,
                object_id: str | None, outcome: str | None) -> list[Any]:
    conds: list[Any] = []
    if since is not None:
        conds.append(col(AuditRecord.occurred_at) >= iso(since))
    if until is not None:
        conds.append(col(AuditRecord.occurred_at) < iso(until))
    if username:
        conds.append(col(AuditRecord.username) == username)
    if event_type:
        conds.append(col(AuditRecord.event_type) == event_type)
    if object_id:
        conds.append(col(AuditRecord.object_id) == object_id)
    if outcome:
        conds.append(col(AuditRecord.outcome) == outcome)
    return conds


def _csv(rows: list[AuditRecord]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        values = r.model_dump()
        values["detail"] = json.dumps(values["detail"], ensure_ascii=False, sort_keys=True)
        writer.writerow([values[c] for c in CSV_COLUMNS])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="audit-records.csv"'})


@router.get("/records", response_model=AuditPage, responses={200: {"content": {"text/csv": {}}}})
def search(
    _user: Auditor,
    session: SessionDep,
    since: Annotated[datetime | None, Query(alias="from", description="Occurred at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Occurred before (ISO 8601)")] = None,
    username: str | None = None,
    event_type: str | None = None,
    object_id: Annotated[str | None, Query(description="Accession, study UID, username ...")] = None,
    outcome: Literal["success", "failure"] | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: Literal["json", "csv"] = "json",
) -> AuditPage | Response:
    """Records in chain order (newest last), filtered; `format=csv` exports the same page."""
    conds = _conditions(since, until, username, event_type, object_id, outcome)
    rows = list(session.exec(
        select(AuditRecord).where(*conds).order_by(col(AuditRecord.seq)).offset(offset).limit(limit)).all())
    if format == "csv":
        return _csv(rows)
    total = session.exec(select(func.count()).select_from(AuditRecord).where(*conds)).one()
    return AuditPage(items=[AuditRecordPublic.model_validate(r.model_dump()) for r in rows], total=total,
                     limit=limit, offset=offset)


@router.get("/verify", response_model=VerifyResult)
def verify(_user: Auditor, session: SessionDep) -> VerifyResult:
    """Walk the SM3 chain and the signed checkpoints; names the first record that is not what was written."""
    return verify_chain(session, get_settings().audit_checkpoint_keys)
