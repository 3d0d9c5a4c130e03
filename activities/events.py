"""Domain events: the business half of a loop's timeline."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session
from temporalio import activity

from core.db import session_scope
from domain.tables import DomainEvent


class EventInput(BaseModel):
    key: str
    accession_number: str
    at: datetime
    actor: str
    kind: str
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict)


def write_event(session: Session, ev: EventInput) -> None:
    """Upsert by key so a retried activity leaves exactly one event."""
    row = session.get(DomainEvent, ev.key)
    if row is None:
        session.add(
            DomainEvent(
                id=ev.key, accession_number=ev.accession_number, at=ev.at, actor=ev.actor,
                kind=ev.kind, summary=ev.summary, detail=ev.detail,
            )
        )


@activity.defn
def record_event(ev: EventInput) -> None:
    with session_scope() as s:
        write_event(s, ev)
