"""The HL7 interface for people: the message log (audit) and the outbound backlog (operations).

- GET /api/v1/hl7/messages?control_id=&patient=&accession=&since=&until=&direction=&include_raw=
  every inbound and outbound message with its ACK and timing, newest first (auditors, managers);
- GET /api/v1/hl7/backlog   outbound messages the HIS has not taken yet, oldest first, with
  attempts and the last error (platform operators): no patient data, only what to chase.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.deps import SessionDep, require
from domain.hl7_tables import HL7Message, clear_ack, clear_raw
from domain.tables import User
from integrations.hl7 import log as msglog
from security.permissions import Permission

router = APIRouter(prefix="/api/v1/hl7", tags=["hl7"])

LogReader = Annotated[User, Depends(require(Permission.hl7_log_read))]
BacklogReader = Annotated[User, Depends(require(Permission.hl7_backlog_read))]


class MessagePublic(BaseModel):
    id: str
    direction: str
    control_id: str
    message_type: str
    version: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    peer: str
    status: str
    ack_code: str | None
    error: str | None
    patient_id: str | None
    accession_number: str | None
    placer_order_number: str | None
    received_at: datetime
    acked_at: datetime | None
    processing_ms: float | None
    attempts: int
    duplicate_of: str | None
    summary: dict[str, Any]
    raw: str | None = None
    ack: str | None = None


class BacklogItem(BaseModel):
    id: str
    control_id: str
    message_type: str
    accession_number: str | None
    status: str
    attempts: int
    error: str | None
    queued_at: datetime


class MessagePage(BaseModel):
    items: list[MessagePublic]
    limit: int


class Backlog(BaseModel):
    count: int
    oldest_queued_at: datetime | None
    items: list[BacklogItem]


def _text(raw: bytes | None, charset: str) -> str | None:
    if raw is None:
        return None
    codec = {"GB18030": "gb18030", "8859/1": "latin-1", "BIG-5": "big5"}.get(charset.upper(), "utf-8")
    return raw.decode(codec, errors="replace").replace("\r", "\n")


def _utc(at: datetime | None) -> datetime | None:
    """A time without a zone is UTC (the log's clock)."""
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


def _public(m: HL7Message, include_raw: bool) -> MessagePublic:
    fields = {k: getattr(m, k) for k in MessagePublic.model_fields if k not in ("raw", "ack")}
    if include_raw:
        # Sealed at rest (R10.3.3): opened only for the caller who asked for it and may read the log.
        fields.update(raw=_text(clear_raw(m), m.charset), ack=_text(clear_ack(m), m.charset))
    return MessagePublic(**fields)


@router.get("/messages", response_model=MessagePage)
def messages(
    _user: LogReader, session: SessionDep,
    control_id: str | None = None, patient: str | None = None, accession: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    direction: Literal["inbound", "outbound"] | None = None,
    include_raw: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MessagePage:
    """Search by MSH-10, patient (RadLoop ID or PID-3 value; a personal number whole), accession and receipt time."""
    found = msglog.search(session, control_id=control_id, patient=patient, accession=accession, since=_utc(since),
                          until=_utc(until), direction=direction, limit=limit)
    return MessagePage(items=[_public(m, include_raw) for m in found], limit=limit)


@router.get("/backlog", response_model=Backlog)
def backlog(_user: BacklogReader, session: SessionDep,
            limit: Annotated[int, Query(ge=1, le=2000)] = 500) -> Backlog:
    rows = msglog.outbound_backlog(session, limit)
    items = [BacklogItem(id=r.id, control_id=r.control_id, message_type=r.message_type,
                         accession_number=r.accession_number, status=r.status, attempts=r.attempts,
                         error=r.error, queued_at=r.received_at) for r in rows]
    return Backlog(count=len(items), oldest_queued_at=items[0].queued_at if items else None, items=items)
