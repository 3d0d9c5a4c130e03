"""Queue calling rows (R6.2.2, R6.3): queue definitions, tickets, and the log of every call.

A ticket's state changes only through conditional UPDATEs (`WHERE state = <expected> AND
calls = <expected>`), so two terminals pressing "next" at once never call the same patient,
and every change also writes a `queue_call` row: the displays' live feed follows that log.

Smart triage's rows (R6.1.6) live here too: room profiles, areas and distances, versioned
rules, the desk's facts at check-in, merged ticket items, and every decision with its reasons.
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
    policy_version: int | None = Field(default=None, description="The care policy version that gave the tier (R6.2.2)")
    seq: float
    state: str = Field(default="waiting", index=True, description="waiting | called | done | left")
    room_id: str | None = None
    calls: int = 0
    isolation: bool = Field(default=False, description="MDRO / infectious: kept apart from other isolation patients")
    joined_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class QueueCall(SQLModel, table=True):
    """Every call-desk action (R6.2.2 'central display management with logs')."""

    __tablename__ = "queue_call"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(index=True)
    queue_id: str
    room_id: str | None = None
    mode: str = Field(description="join | next | recall | skip | select | transfer | finish | leave | gap | override")
    detail: str = ""
    actor: str
    at: datetime = Field(default_factory=utcnow, index=True)


class QueueTicketItem(SQLModel, table=True):
    """The exam items of a merged ticket (R6.1.6): several orders, one exam, one place in the queue.
    The ticket finishes when its last item is done or left."""

    __tablename__ = "queue_ticket_item"
    id: str = Field(primary_key=True)
    ticket_id: str = Field(index=True)
    accession_number: str = Field(index=True)
    live_accession: str | None = Field(default=None, unique=True, description="Set while not finished")
    state: str = Field(default="waiting", description="waiting | done | left")
    merge_rule: str = ""


class RoomTriageProfile(SQLModel, table=True):
    """What triage knows about a room beyond its modalities (R6.1.6)."""

    __tablename__ = "room_triage_profile"
    room_id: str = Field(primary_key=True, foreign_key="room.id")
    building: str = ""
    floor: int = 0
    active: bool = True
    accepts_bed: bool = True
    accepts_wheelchair: bool = True
    sexes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False),
                             description="Empty: everyone; ['F']: women only")
    min_age: int | None = None
    max_age: int | None = None
    isolation_room: bool = False
    updated_by: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class TriageArea(SQLModel, table=True):
    """A ward or outpatient area patients come to the rooms from."""

    __tablename__ = "triage_area"
    id: str = Field(primary_key=True)
    name: str
    building: str
    floor: int = 0


class AreaRoomDistance(SQLModel, table=True):
    """Measured walking distance from an area to a room; triage estimates from building and floor without it."""

    __tablename__ = "area_room_distance"
    area_id: str = Field(primary_key=True)
    room_id: str = Field(primary_key=True)
    metres: float = Field(ge=0)


class TriageRuleSet(SQLModel, table=True):
    """Triage rules (domain.queueing.triage.TriageRules) by version; the newest applies."""

    __tablename__ = "triage_rule_set"
    version: int = Field(primary_key=True)
    rules: dict = Field(sa_column=Column(JSON, nullable=False))
    created_by: str
    created_at: datetime = Field(default_factory=utcnow)


class CheckInFacts(SQLModel, table=True):
    """The patient as the desk found them at check-in (where from, how moved, isolation, critical)."""

    __tablename__ = "check_in_facts"
    accession_number: str = Field(primary_key=True)
    area_id: str | None = None
    transport: str = Field(default="walking", description="walking | wheelchair | bed")
    isolation: str = Field(default="none", description="none | mdro | infectious")
    critical: bool = False
    recorded_by: str
    recorded_at: datetime = Field(default_factory=utcnow)


class TriageDecision(SQLModel, table=True):
    """Why a patient queues where they do: triage's choice, a merge, or a person's override."""

    __tablename__ = "triage_decision"
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(index=True)
    ticket_id: str = Field(index=True)
    kind: str = Field(description="triage | merge | override")
    room_id: str
    rules_version: int
    why: str
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    actor: str
    at: datetime = Field(default_factory=utcnow, index=True)
