"""Queue calling rows (R6.2.2, R6.3): queue definitions, tickets, and the log of every call.

A ticket's state changes only through conditional UPDATEs (`WHERE state = <expected> AND
calls = <expected>`), so two terminals pressing "next" at once never call the same patient,
and every change also writes a `queue_call` row: the displays' live feed follows that log.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


class QueueDefinition(SQLModel, table=True):
    __tablename__ = "queue_definition"
    id: str = Field(primary_key=True)
    name: str
    rooms: list[str] = Field(sa_column=Column(JSON, nullable=False), description="Rooms calling from it")
    stage: str = Field(default="exam", description="exam | injection | anaesthesia | preparation ...")
    active: bool = True


class QueueTicket(SQLModel, table=True):
    __tablename__ = "queue_ticket"
    id: str = Field(primary_key=True)
    accession_number: str = Field(index=True)
    live_accession: str | None = Field(default=None, unique=True, description="Set while not finished")
    patient_name: str
    queue_id: str = Field(index=True)
    tier: int
    tier_reason: str
    seq: float
    state: str = Field(default="waiting", index=True, description="waiting | called | done | left")
    room_id: str | None = None
    calls: int = 0
    joined_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class QueueCall(SQLModel, table=True):
    """Every call-desk action (R6.2.2 'central display management with logs')."""

    __tablename__ = "queue_call"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(index=True)
    queue_id: str
    room_id: str | None = None
    mode: str = Field(description="join | next | recall | skip | select | transfer | finish | leave")
    detail: str = ""
    actor: str
    at: datetime = Field(default_factory=utcnow, index=True)
