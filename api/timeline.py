"""One loop's story in time: Temporal's history merged with the business events.

Temporal says what the machinery did (activities, timers, updates, child loops);
`domain_event` rows say who did what in the center's words. Payloads stay
encrypted: names of people come only from domain events, so the timeline never
needs the codec key.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel
from sqlmodel import col, select
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import in_thread
from core.config import get_settings
from core.db import session_scope
from core.temporal import local_activity_type
from domain.tables import CriticalValue, DomainEvent, ExamOrder
from services.errors import NotFound

Source = Literal["temporal", "domain"]


class TimelineEntry(BaseModel):
    at: datetime
    source: Source
    who: str
    what: str
    outcome: str = ""
    workflow_id: str


class Timeline(BaseModel):
    accession_number: str
    workflow_id: str
    temporal_ui_url: str
    temporal_available: bool
    entries: list[TimelineEntry]


def temporal_ui_url(workflow_id: str) -> str:
    s = get_settings()
    return f"http://127.0.0.1:{s.dev_temporal_ui_port}/namespaces/{s.temporal_namespace}/workflows/{workflow_id}"


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _failure(f) -> str:
    return f"failed: {f.message}" if f is not None and f.message else "failed"


def temporal_entries(events: Iterable[HistoryEvent], workflow_id: str) -> list[TimelineEntry]:
    """Map the history events a person cares about; workflow-task bookkeeping is left out."""
    names: dict[int, str] = {}  # scheduling event id -> activity/update/child name
    out: list[TimelineEntry] = []

    def add(ev: HistoryEvent, what: str, outcome: str = "", who: str = "workflow") -> None:
        out.append(
            TimelineEntry(at=_utc(ev.event_time.ToDatetime(tzinfo=timezone.utc)), source="temporal",
                          who=who, what=what, outcome=outcome, workflow_id=workflow_id)
        )

    for ev in events:
        kind = ev.WhichOneof("attributes")
        a = getattr(ev, kind) if kind else None
        if kind == "workflow_execution_started_event_attributes":
            add(ev, f"workflow {a.workflow_type.name} started", who=a.identity or "client")
        elif kind == "activity_task_scheduled_event_attributes":
            names[ev.event_id] = a.activity_type.name
            add(ev, f"activity {a.activity_type.name} scheduled")
        elif kind == "activity_task_completed_event_attributes":
            add(ev, f"activity {names.get(a.scheduled_event_id, '?')}", "completed", who=a.identity or "worker")
        elif kind == "activity_task_failed_event_attributes":
            add(ev, f"activity {names.get(a.scheduled_event_id, '?')}", _failure(a.failure), who=a.identity or "worker")
        elif kind == "activity_task_timed_out_event_attributes":
            add(ev, f"activity {names.get(a.scheduled_event_id, '?')}", "timed out")
        elif (local := local_activity_type(ev)) is not None:
            outcome = _failure(a.failure) if a.HasField("failure") else "completed"
            add(ev, f"activity {local}", outcome, who="worker (local activity)")
        elif kind == "timer_started_event_attributes":
            add(ev, f"timer {a.timer_id} started", f"fires in {a.start_to_fire_timeout.ToTimedelta()}")
        elif kind == "timer_fired_event_attributes":
            add(ev, f"timer {a.timer_id}", "fired")
        elif kind == "timer_canceled_event_attributes":
            add(ev, f"timer {a.timer_id}", "cancelled")
        elif kind == "workflow_execution_update_accepted_event_attributes":
            name = a.accepted_request.input.name
            names[ev.event_id] = name
            add(ev, f"update {name}", "accepted", who=a.accepted_request.meta.identity or "client")
        elif kind == "workflow_execution_update_completed_event_attributes":
            failed = a.outcome.HasField("failure")
            add(ev, f"update {names.get(a.accepted_event_id, '?')}",
                _failure(a.outcome.failure) if failed else "completed")
        elif kind == "workflow_execution_signaled_event_attributes":
            add(ev, f"signal {a.signal_name}", "received", who=a.identity or "client")
        elif kind == "start_child_workflow_execution_initiated_event_attributes":
            names[ev.event_id] = f"{a.workflow_type.name} {a.workflow_id}"
            add(ev, f"child workflow {a.workflow_type.name} {a.workflow_id}", "initiated")
        elif kind and kind.startswith("child_workflow_execution_") and kind != "child_workflow_execution_started_event_attributes":
            verb = kind.removeprefix("child_workflow_execution_").removesuffix("_event_attributes").replace("_", " ")
            add(ev, f"child workflow {a.workflow_type.name} {a.workflow_execution.workflow_id}",
                _failure(a.failure) if verb == "failed" else verb)
        elif kind in (
            "workflow_execution_completed_event_attributes", "workflow_execution_canceled_event_attributes",
            "workflow_execution_terminated_event_attributes", "workflow_execution_timed_out_event_attributes",
            "workflow_execution_continued_as_new_event_attributes",
        ):
            verb = kind.removeprefix("workflow_execution_").removesuffix("_event_attributes").replace("_", " ")
            add(ev, "workflow", verb)
        elif kind == "workflow_execution_failed_event_attributes":
            add(ev, "workflow", _failure(a.failure))
    return out


def domain_entries(rows: Iterable[DomainEvent], workflow_id: str) -> list[TimelineEntry]:
    return [
        TimelineEntry(at=_utc(r.at), source="domain", who=r.actor, what=r.kind, outcome=r.summary, workflow_id=workflow_id)
        for r in rows
    ]


def merge(*streams: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """One list in time order; at equal times each stream keeps its own order (stable sort)."""
    return sorted((e for s in streams for e in s), key=lambda e: e.at)


def _rows(accession: str) -> tuple[ExamOrder, list[DomainEvent], list[str]]:
    with session_scope() as session:
        order = session.get(ExamOrder, accession)
        if order is None:
            raise NotFound(f"no order with accession number {accession}")
        events = list(
            session.exec(
                select(DomainEvent).where(DomainEvent.accession_number == accession)
                .order_by(col(DomainEvent.at), col(DomainEvent.id))
            ).all()
        )
        children = list(
            session.exec(
                select(CriticalValue.id).where(CriticalValue.accession_number == accession)
                .order_by(col(CriticalValue.raised_at))
            ).all()
        )
        return order, events, children


async def history_entries(client: Client, workflow_id: str) -> list[TimelineEntry]:
    try:
        events = [ev async for ev in client.get_workflow_handle(workflow_id).fetch_history_events()]
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return []  # not started yet (or already purged by retention)
        raise
    return temporal_entries(events, workflow_id)


async def build_timeline(client: Client | None, accession: str) -> Timeline:
    """Exam loop + its critical-value children + business events; `client=None` gives the business part."""
    order, events, children = await in_thread(_rows, accession)
    streams = [domain_entries(events, order.workflow_id)]
    if client is not None:
        for wid in [order.workflow_id, *children]:
            streams.append(await history_entries(client, wid))
    return Timeline(
        accession_number=accession,
        workflow_id=order.workflow_id,
        temporal_ui_url=temporal_ui_url(order.workflow_id),
        temporal_available=client is not None,
        entries=merge(*streams),
    )
