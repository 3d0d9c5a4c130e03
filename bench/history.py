"""What a loop costs Temporal, read from its history: events, activities, updates, workflow tasks.

The baseline's shape comes from here too, so "the same number of activities and
updates" is counted from RadLoop as it is today, not written down once and left
to drift.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from core.temporal import local_activity_type

OPEN_TASK_ACTIVITY = "open_task"  # activities.tasks.open_task: writes the inbox row


@dataclass(frozen=True)
class HistoryCounts:
    events: int
    activities: int
    local_activities: int
    updates: int
    signals: int
    workflow_tasks: int


async def fetch(client: Client, workflow_id: str) -> list[HistoryEvent]:
    return [ev async for ev in client.get_workflow_handle(workflow_id).fetch_history_events()]


def counts(events: Sequence[HistoryEvent]) -> HistoryCounts:
    def n(kind: int) -> int:
        return sum(1 for ev in events if ev.event_type == kind)

    return HistoryCounts(
        events=len(events),
        activities=n(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        local_activities=sum(1 for ev in events if local_activity_type(ev) is not None),
        updates=n(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED),
        signals=n(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED),
        workflow_tasks=n(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
    )


def mean_counts(all_counts: Sequence[HistoryCounts]) -> dict[str, float]:
    fields = ("events", "activities", "local_activities", "updates", "signals", "workflow_tasks")
    return {f: statistics.fmean(getattr(c, f) for c in all_counts) for f in fields}


def script_of(events: Sequence[HistoryEvent]) -> str:
    """RadLoop's history as a bare script: `T` opens a human task, `A` any other activity, `U` an update,
    `S` a search-attribute upsert (the plain baseline leaves those out; `--attribution` keeps them);
    `t` and `a` are the same run as local activities (always one after another: the markers of
    consecutive local activities share a workflow task, which does not make them concurrent).

    Activities and upserts that one workflow task scheduled together (RadLoop runs some
    side by side, e.g. the HL7 outbox sender) are bracketed, `[AA]`, and the baseline
    runs them concurrently too. Signals count as updates (the baseline has one kind of
    human input). Raises if an update would come before the task it completes, which
    the baseline could not drive.
    """
    batches: list[tuple[int | None, list[str]]] = []  # (scheduling workflow task, ops)

    def add(op: str, wft: int | None) -> None:
        if wft is not None and batches and batches[-1][0] == wft:
            batches[-1][1].append(op)
        else:
            batches.append((wft, [op]))

    for ev in events:
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = ev.activity_task_scheduled_event_attributes
            add("T" if a.activity_type.name == OPEN_TASK_ACTIVITY else "A", a.workflow_task_completed_event_id)
        elif (local := local_activity_type(ev)) is not None:
            add("t" if local == OPEN_TASK_ACTIVITY else "a", None)
        elif ev.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            add("S", ev.upsert_workflow_search_attributes_event_attributes.workflow_task_completed_event_id)
        elif ev.event_type in (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED):
            add("U", None)
    script = "".join(
        f"[{''.join(ops)}]" if sum(op in "AT" for op in ops) > 1 else "".join(ops) for _wft, ops in batches)
    opened = 0
    for op in script:
        opened += {"T": 1, "t": 1, "U": -1}.get(op, 0)
        if opened < 0:
            raise ValueError(f"an update precedes its task in {script!r}")
    return script


def activity_count(script: str) -> int:
    return sum(op in "ATat" for op in script)
