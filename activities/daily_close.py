"""Daily close (R6.3): read the day's unfinished queue tickets, apply what a person decided for each."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from temporalio import activity

from domain.loop import OpenTaskView
from services import queueing
from services.queueing import CloseLine

DAILY_CLOSE_WORKFLOW = "DailyCloseWorkflow"
DAILY_CLOSE_SCHEDULE = "daily-close"


def daily_close_workflow_id(day: date) -> str:
    """One close per local day: the business key is the workflow ID, so it cannot start twice."""
    return f"daily-close-{day.isoformat()}"


class DailyCloseInput(BaseModel):
    day: date | None = Field(None, description="The local day; None (the schedule): today in `timezone`")
    timezone: str = "Asia/Shanghai"
    department_id: str = Field("radiology", description="Whose head is reminded while the close is overdue")


class DailyCloseResult(BaseModel):
    day: date
    listed: int = 0
    finished: int = 0
    left: int = 0
    task_id: str | None = None
    reminders: int = Field(0, description="Reminders sent to the department head while the task was overdue")
    started: str | None = Field(None, description="Scheduled run: the workflow ID of the day's close it started")


class DailyCloseStatus(BaseModel):
    day: date | None
    tickets: list[str] = Field(description="Tickets listed in the task, each needing a disposition")
    open_tasks: list[OpenTaskView]
    reminders: int


class Disposition(BaseModel):
    ticket_id: str
    disposition: str
    reason: str = ""


class ApplyDispositions(BaseModel):
    day: date
    actor_id: str
    dispositions: list[Disposition]


@activity.defn
def list_unfinished(day: date) -> list[CloseLine]:
    return queueing.unfinished_lines(day)


@activity.defn
def apply_dispositions(a: ApplyDispositions) -> int:
    """Idempotent: a ticket already closed (by a retry or a desk) is left as it is."""
    return sum(queueing.close_for_day(d.ticket_id, d.disposition, d.reason, a.actor_id) for d in a.dispositions)


class LocalDay(BaseModel):
    timezone: str
    at: datetime


@activity.defn
def local_day(d: LocalDay) -> date:
    """The centre's date at workflow time `at` (the workflow sandbox keeps zoneinfo out)."""
    return d.at.astimezone(ZoneInfo(d.timezone)).date()
