"""Critical value rows (R7.1.3, R8.7): raised, each escalation, the acknowledgment."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from domain.loop import EscalationLevel
from temporalio import activity

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.tables import CriticalValue


class CriticalRaised(BaseModel):
    critical_value_id: str
    accession_number: str
    finding: str
    raised_by: str
    at: datetime


class CriticalChange(BaseModel):
    key: str
    critical_value_id: str
    accession_number: str
    at: datetime
    state: str
    level: int
    summary: str
    actor: str = "system"
    acked_by: str | None = None
    ack_name: str | None = None
    read_back: str | None = None
    ack_channel: str | None = None


@activity.defn
def record_critical_raised(r: CriticalRaised) -> None:
    with session_scope() as s:
        if s.get(CriticalValue, r.critical_value_id) is None:
            s.add(CriticalValue(id=r.critical_value_id, accession_number=r.accession_number, finding=r.finding,
                                raised_by=r.raised_by, raised_at=r.at))
        write_event(s, EventInput(
            key=f"critical-raised/{r.critical_value_id}", accession_number=r.accession_number, at=r.at,
            actor=r.raised_by, kind="critical_raised", summary=f"critical value raised: {r.finding}",
            detail={"critical_value_id": r.critical_value_id},
        ))


@activity.defn
def record_critical_change(c: CriticalChange) -> None:
    with session_scope() as s:
        row = s.get(CriticalValue, c.critical_value_id)
        if row is not None:
            row.state, row.level = c.state, c.level
            if c.acked_by:
                row.acked_at, row.acked_by, row.ack_name = c.at, c.acked_by, c.ack_name
                row.read_back, row.ack_channel = c.read_back, c.ack_channel
        write_event(s, EventInput(
            key=c.key, accession_number=c.accession_number, at=c.at, actor=c.actor,
            kind=f"critical_{c.state}", summary=c.summary,
            detail={"critical_value_id": c.critical_value_id, "level": c.level},
        ))


class LadderRequest(BaseModel):
    accession_number: str
    finding: str


@activity.defn
def critical_ladder(req: LadderRequest) -> list[EscalationLevel]:
    """The escalation ladder in force now (settings; the dictionary work refines it per item).

    Read in an activity so a running critical value keeps the ladder it started with.
    """
    from core.config import get_settings

    s = get_settings()
    return [
        EscalationLevel(name="ordering clinician", notify="ordering_clinician", wait_seconds=s.critical_ack_deadline_seconds),
        EscalationLevel(name="department on-call", notify="department_oncall", wait_seconds=s.critical_escalation_seconds),
        EscalationLevel(name="phone call by radiology staff", notify="phone_call_task", wait_seconds=s.critical_escalation_seconds),
    ]
