"""Daily close (R6.3 (7)) under the time-skipping server: the day's unfinished patients land in one
registrar/nurse task, every one needs a disposition, the dispositions go through the queue's own
finish/leave (logged), and a day is closed once however often it is started."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import Session, col, select
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.daily_close import (
    DAILY_CLOSE_WORKFLOW,
    ApplyDispositions,
    DailyCloseInput,
    DailyCloseResult,
    DailyCloseStatus,
    Disposition,
    apply_dispositions,
    daily_close_workflow_id,
)
from api.main import create_app
from core.config import get_settings
from core.db import get_engine
from domain.enums import Role
from domain.loop import TaskCompletion
from domain.queue_tables import QueueCall, QueueTicket
from domain.queueing.policy import PatientTraits
from domain.tables import HumanTask
from services import loop_commands, queueing
from services.errors import Forbidden, Invalid
from tests.support.loop_driver import actor
from worker import build_worker

WAIT = 60.0
ADULT = PatientTraits(age=40)


def _today() -> date:
    return datetime.now(timezone.utc).astimezone(ZoneInfo(get_settings().timezone)).date()


@pytest.fixture
def ct_queue(sqlite_database):
    with Session(get_engine()) as s:
        queueing.define_queue(s, "q-ct", "CT", ["CT1"])
        s.commit()


async def _open_task(workflow_id: str) -> HumanTask:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        with Session(get_engine()) as s:
            row = s.exec(select(HumanTask).where(HumanTask.workflow_id == workflow_id)).first()
        if row is not None:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no task for {workflow_id}")
        await asyncio.sleep(0.1)


async def _start(client, task_queue: str, day: date | None, workflow_id: str | None = None):
    return await client.start_workflow(
        DAILY_CLOSE_WORKFLOW, DailyCloseInput(day=day, timezone=get_settings().timezone),
        id=workflow_id or daily_close_workflow_id(day), task_queue=task_queue, result_type=DailyCloseResult,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)


def _done(task_id: str, role: Role, *dispositions: dict) -> TaskCompletion:
    return TaskCompletion(task_id=task_id, actor=actor(role), data={"dispositions": list(dispositions)})


async def test_unfinished_patients_need_a_disposition_each_and_are_closed_through_the_queue(
        ts_env, ct_queue, task_queue) -> None:
    queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    queueing.join("A2", "李四", "q-ct", ADULT, "u-registrar")
    queueing.join("A3", "王小五", "q-ct", ADULT, "u-registrar")
    queueing.act(queueing.call_next("CT1", "u-tech").id, "finish", "u-tech")  # A1: examined, done
    called = queueing.call_next("CT1", "u-tech")  # A2: called, never finished
    day = _today()
    wid = daily_close_workflow_id(day)
    assert wid == f"daily-close-{day.isoformat()}"
    async with build_worker(ts_env.client, task_queue):
        handle = await _start(ts_env.client, task_queue, day)
        task = await _open_task(wid)
        assert task.task_type == "daily_close" and task.roles.split() == ["registrar", "nurse"]
        listed = task.context["tickets"]
        assert [(t["accession_number"], t["state"], t["patient"], t["room_id"]) for t in listed] == [
            ("A2", "called", "李*", "CT1"), ("A3", "waiting", "王*五", None)]
        a2, a3 = (t["ticket_id"] for t in listed)
        assert a2 == called.id

        with pytest.raises(Invalid, match="missing: " + a3):
            await loop_commands.complete_task(ts_env.client, wid, _done(
                task.id, Role.registrar, {"ticket_id": a2, "disposition": "finished"}))
        with pytest.raises(Invalid, match="reason is required"):
            await loop_commands.complete_task(ts_env.client, wid, _done(
                task.id, Role.nurse, {"ticket_id": a2, "disposition": "finished"},
                {"ticket_id": a3, "disposition": "left"}))
        with pytest.raises(Invalid, match="not on this day's list"):
            await loop_commands.complete_task(ts_env.client, wid, _done(
                task.id, Role.nurse, {"ticket_id": a2, "disposition": "finished"},
                {"ticket_id": a3, "disposition": "finished"}, {"ticket_id": "T-other", "disposition": "finished"}))
        with pytest.raises(Forbidden, match="may not complete"):
            await loop_commands.complete_task(ts_env.client, wid, _done(
                task.id, Role.technologist, {"ticket_id": a2, "disposition": "finished"},
                {"ticket_id": a3, "disposition": "finished"}))
        with Session(get_engine()) as s:  # nothing refused reached the queue
            assert {t.state for t in s.exec(select(QueueTicket).where(col(QueueTicket.id).in_([a2, a3])))} == {
                "called", "waiting"}

        await loop_commands.complete_task(ts_env.client, wid, _done(
            task.id, Role.nurse, {"ticket_id": a2, "disposition": "finished"},
            {"ticket_id": a3, "disposition": "left", "reason": "went home before the exam"}))
        result = await handle.result()

    assert (result.listed, result.finished, result.left, result.task_id) == (2, 1, 1, task.id)
    with Session(get_engine()) as s:
        tickets = {t.id: t for t in s.exec(select(QueueTicket))}
        assert (tickets[a2].state, tickets[a3].state) == ("done", "left")
        assert tickets[a3].live_accession is None  # may check in again another day
        calls = {(c.ticket_id, c.mode): c for c in s.exec(select(QueueCall))}
        assert calls[(a3, "leave")].detail == "daily close: went home before the exam"
        assert calls[(a3, "leave")].actor == "u-nurse" and calls[(a2, "finish")].actor == "u-nurse"
        row = s.get(HumanTask, task.id)
        assert row.state == "done" and row.completed_by == "u-nurse"
        logged = len(s.exec(select(QueueCall)).all())
    assert queueing.unfinished(day) == []
    # Applying again (a retried activity) changes nothing and logs nothing.
    again = ApplyDispositions(day=day, actor_id="u-nurse", dispositions=[
        Disposition(ticket_id=a2, disposition="finished"), Disposition(ticket_id=a3, disposition="left", reason="x")])
    assert apply_dispositions(again) == 0
    with Session(get_engine()) as s:
        assert len(s.exec(select(QueueCall)).all()) == logged


async def test_a_day_with_everyone_finished_opens_no_task(ts_env, ct_queue, task_queue) -> None:
    queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    queueing.act(queueing.call_next("CT1", "u-tech").id, "finish", "u-tech")
    day = _today()
    async with build_worker(ts_env.client, task_queue):
        result = await (await _start(ts_env.client, task_queue, day)).result()
    assert result.listed == 0 and result.task_id is None
    with Session(get_engine()) as s:
        assert s.exec(select(HumanTask)).all() == []


async def test_a_day_is_closed_once_whoever_starts_it(ts_env, ct_queue, task_queue) -> None:
    queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    day = _today()
    wid = daily_close_workflow_id(day)
    async with build_worker(ts_env.client, task_queue):
        # The schedule's runs carry no day: each starts today's close under the business key.
        first = await (await _start(ts_env.client, task_queue, None, f"sched-{uuid.uuid4().hex[:6]}")).result()
        second = await (await _start(ts_env.client, task_queue, None, f"sched-{uuid.uuid4().hex[:6]}")).result()
        assert first.started == second.started == wid and first.day == day
        await _open_task(wid)
        with pytest.raises(WorkflowAlreadyStartedError):
            await _start(ts_env.client, task_queue, day)
        with Session(get_engine()) as s:
            assert len(s.exec(select(HumanTask).where(HumanTask.workflow_id == wid)).all()) == 1
        await ts_env.client.get_workflow_handle(wid).terminate("test over")


async def test_a_manager_starts_a_day_once_through_the_api(ts_env, ct_queue, monkeypatch) -> None:
    # The sqlite_database fixture seeds the demo users (token `dev-<role>`).
    queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    day = _today()
    app = create_app(temporal_client=ts_env.client)
    async with build_worker(ts_env.client, get_settings().temporal_task_queue):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test") as api:
            url = f"/api/v1/queues/daily-close/{day.isoformat()}"
            refused = await api.post(url, headers={"Authorization": "Bearer dev-registrar"})
            assert refused.status_code == 403
            first = await api.post(url, headers={"Authorization": "Bearer dev-manager"})
            again = await api.post(url, headers={"Authorization": "Bearer dev-manager"})
            assert (first.status_code, again.status_code) == (201, 200)
            assert first.json()["workflow_id"] == again.json()["workflow_id"] == daily_close_workflow_id(day)
            assert (first.json()["started"], again.json()["started"]) == (True, False)
            await _open_task(daily_close_workflow_id(day))
        await ts_env.client.get_workflow_handle(daily_close_workflow_id(day)).terminate("test over")


async def test_an_overdue_close_reminds_the_department_head_then_daily(
        ts_env, ct_queue, task_queue, notify_sink) -> None:
    queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    day = _today()
    wid = daily_close_workflow_id(day)
    async with build_worker(ts_env.client, task_queue):
        handle = await _start(ts_env.client, task_queue, day)
        task = await _open_task(wid)
        await ts_env.sleep(timedelta(hours=11))
        assert not [m for m in notify_sink.received if "Daily close overdue" in m["title"]]
        await ts_env.sleep(timedelta(hours=1, minutes=5))  # past the task's 12-hour due time
        await _until(lambda: len(_reminders(notify_sink)) == 1)
        await ts_env.sleep(timedelta(days=1))
        await _until(lambda: len(_reminders(notify_sink)) == 2)
        assert f"task {task.id}" in _reminders(notify_sink)[0]["message"]
        status = await handle.query("status", result_type=DailyCloseStatus)
        assert (status.reminders, [t.task_id for t in status.open_tasks]) == (2, [task.id])
        a1 = task.context["tickets"][0]["ticket_id"]
        await loop_commands.complete_task(ts_env.client, wid, _done(
            task.id, Role.registrar, {"ticket_id": a1, "disposition": "left", "reason": "went home"}))
        result = await handle.result()
    assert (result.left, result.reminders) == (1, 2)


def _reminders(sink) -> list[dict]:
    return [m for m in sink.received if m["title"].startswith("Daily close overdue")]


async def _until(check) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.1)
