"""Critical value rows (R7.1.3, R8.7) and the dictionary lookups the loops need."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import select
from temporalio import activity

from activities.events import EventInput, write_event
from core.config import get_settings
from core.db import session_scope
from domain.critical_dictionary import CriticalItemSpec
from domain.critical_tables import CriticalDictionaryVersion
from domain.critical_text import Suggestion, suggest
from domain.loop import CriticalPlan, EscalationLevel
from domain.tables import CriticalValue


class CriticalRaised(BaseModel):
    critical_value_id: str
    accession_number: str
    finding: str
    raised_by: str
    at: datetime
    item_code: str | None = None
    dictionary_version: int | None = None
    raised_by_role: str | None = None
    ordering_department: str | None = None
    deadline_seconds: int = 600
    needs_verification: bool = False


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
    verified_by: str | None = None
    finding: str | None = None
    notified: bool = False
    escalations: int | None = None
    action_taken: str | None = None
    closed: bool = False


@activity.defn
def record_critical_raised(r: CriticalRaised) -> None:
    with session_scope() as s:
        if s.get(CriticalValue, r.critical_value_id) is None:
            s.add(CriticalValue(
                id=r.critical_value_id, accession_number=r.accession_number, finding=r.finding,
                raised_by=r.raised_by, raised_at=r.at, item_code=r.item_code,
                dictionary_version=r.dictionary_version, raised_by_role=r.raised_by_role,
                ordering_department=r.ordering_department, deadline_seconds=r.deadline_seconds,
                needs_verification=r.needs_verification,
                state="verifying" if r.needs_verification else "notifying",
            ))
        write_event(s, EventInput(
            key=f"critical-raised/{r.critical_value_id}", accession_number=r.accession_number, at=r.at,
            actor=r.raised_by, kind="critical_raised", summary=f"critical value raised: {r.finding}",
            detail={"critical_value_id": r.critical_value_id, "item_code": r.item_code,
                    "dictionary_version": r.dictionary_version},
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
            if c.verified_by:
                row.verified_by, row.verified_at = c.verified_by, c.at
            if c.finding:
                row.finding = c.finding
            if c.notified and row.first_notified_at is None:
                row.first_notified_at = c.at
            if c.escalations is not None:
                row.escalations = c.escalations
            if c.action_taken:
                row.action_taken, row.action_by, row.action_at = c.action_taken, c.actor, c.at
            if c.closed:
                row.closed_at = c.at
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
    """The settings-based ladder of the first version (kept for loops started with it)."""
    s = get_settings()
    return [
        EscalationLevel(name="ordering clinician", notify="ordering_clinician", wait_seconds=s.critical_ack_deadline_seconds),
        EscalationLevel(name="department on-call", notify="department_oncall", wait_seconds=s.critical_escalation_seconds),
        EscalationLevel(name="phone call by radiology staff", notify="phone_call_task", wait_seconds=s.critical_escalation_seconds),
    ]


def current_dictionary() -> tuple[int | None, list[CriticalItemSpec]]:
    with session_scope() as s:
        row = s.exec(select(CriticalDictionaryVersion).order_by(CriticalDictionaryVersion.version.desc())).first()  # type: ignore[attr-defined]
        if row is None:
            return None, []
        return row.version, [CriticalItemSpec.model_validate(i) for i in row.items]


class PlanRequest(BaseModel):
    accession_number: str
    finding: str
    item_code: str | None = None
    modality: str | None = None


def _unlisted_ladder() -> list[EscalationLevel]:
    s = get_settings()
    return [
        EscalationLevel(name="ordering clinician", notify="ordering_clinician", wait_seconds=s.critical_ack_deadline_seconds),
        EscalationLevel(name="department head", notify="department_head", wait_seconds=s.critical_escalation_seconds),
        EscalationLevel(name="phone call by radiology staff", notify="phone_call_task", wait_seconds=s.critical_escalation_seconds),
    ]


@activity.defn
def critical_plan(req: PlanRequest) -> CriticalPlan:
    """Resolve a finding against the dictionary in force now: by code, else by text rules.

    Read in an activity, so the plan is fixed in history: a critical value keeps the
    dictionary version it started with even if the dictionary changes meanwhile.
    """
    version, items = current_dictionary()
    by_code = {i.code: i for i in items}
    item = by_code.get(req.item_code or "")
    if item is None:
        hits = suggest(req.finding, items, req.modality)
        item = by_code.get(hits[0].code) if hits else None
    if item is None:
        return CriticalPlan(item_code="unlisted", item_name=req.finding, dictionary_version=version,
                            deadline_seconds=get_settings().critical_ack_deadline_seconds,
                            response_seconds=1800, ladder=_unlisted_ladder())
    return CriticalPlan(item_code=item.code, item_name=item.display, dictionary_version=version,
                        deadline_seconds=item.deadline_seconds, response_seconds=item.response_seconds,
                        ladder=item.ladder)


class SuggestRequest(BaseModel):
    text: str
    modality: str | None = None


@activity.defn
def suggest_critical_items(req: SuggestRequest) -> list[Suggestion]:
    """Text-rule suggestions for the reviewer (a human confirms; R8.7.2)."""
    _version, items = current_dictionary()
    return suggest(req.text, items, req.modality)
