"""Human task rows: what inboxes list. The workflow decides; these rows mirror it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import select
from temporalio import activity

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.tables import HumanTask


class OpenTask(BaseModel):
    task_id: str
    workflow_id: str
    accession_number: str
    task_type: str
    role: str
    roles: list[str]
    title: str
    form_schema: str
    priority_rank: int
    due_at: datetime
    created_at: datetime
    context: dict[str, Any] = Field(default_factory=dict)


class CloseTask(BaseModel):
    task_id: str
    state: str = "done"
    at: datetime
    actor_id: str | None = None
    result: dict[str, Any] | None = None


class CancelTasks(BaseModel):
    workflow_id: str
    at: datetime


@activity.defn
def open_task(t: OpenTask) -> None:
    with session_scope() as s:
        if s.get(HumanTask, t.task_id) is not None:
            return  # retried activity: the row is already there
        s.add(HumanTask(
            id=t.task_id, workflow_id=t.workflow_id, accession_number=t.accession_number,
            task_type=t.task_type, role=t.role, roles=f" {' '.join(t.roles)} ", title=t.title, form_schema=t.form_schema,
            priority_rank=t.priority_rank, due_at=t.due_at, created_at=t.created_at, context=t.context,
        ))
        write_event(s, EventInput(
            key=f"task-open/{t.task_id}", accession_number=t.accession_number, at=t.created_at,
            actor="system", kind="task_opened", summary=f"{t.title} ({t.role})", detail={"task_id": t.task_id},
        ))


@activity.defn
def close_task(c: CloseTask) -> None:
    with session_scope() as s:
        row = s.get(HumanTask, c.task_id)
        if row is None or row.state in ("done", "cancelled"):
            return
        row.state = c.state
        row.completed_at = c.at
        row.completed_by = c.actor_id
        row.result = c.result
        write_event(s, EventInput(
            key=f"task-close/{c.task_id}", accession_number=row.accession_number, at=c.at,
            actor=c.actor_id or "system", kind=f"task_{c.state}", summary=f"{row.title}: {c.state}",
            detail={"task_id": c.task_id, "result": c.result or {}},
        ))


@activity.defn
def cancel_open_tasks(c: CancelTasks) -> int:
    with session_scope() as s:
        rows = s.exec(select(HumanTask).where(
            HumanTask.workflow_id == c.workflow_id,
            HumanTask.state.in_(["open", "claimed"]),  # type: ignore[attr-defined]
        )).all()
        for row in rows:
            row.state, row.completed_at = "cancelled", c.at
        return len(rows)
