"""The daily-close Temporal Schedule on the real dev server: created once whichever worker starts
first, a changed time is applied to it, and a firing starts the day's close under its business key."""
from __future__ import annotations

import asyncio

from sqlmodel import Session, select
from temporalio.client import ScheduleActionStartWorkflow

from activities.daily_close import DAILY_CLOSE_SCHEDULE, DAILY_CLOSE_WORKFLOW
from core.config import Settings
from core.db import get_engine
from domain.queueing.policy import PatientTraits
from domain.tables import HumanTask
from services import queueing
from workflows.daily_close.schedule import ensure_daily_close_schedule
from worker import build_worker


async def _calendar(handle) -> tuple[list, list, str | None, ScheduleActionStartWorkflow]:
    desc = await handle.describe()
    cal = desc.schedule.spec.calendars[0]
    return ([r.start for r in cal.hour], [r.start for r in cal.minute], desc.schedule.spec.time_zone_name,
            desc.schedule.action)


async def test_the_schedule_is_created_once_updated_and_starts_the_days_close(
        dev_env, sqlite_database, task_queue) -> None:
    client = dev_env.client
    with Session(get_engine()) as s:
        queueing.define_queue(s, "q-ct", "CT", ["CT1"])
        s.commit()
    queueing.join("A1", "张三", "q-ct", PatientTraits(age=40), "u-registrar")
    handle = client.get_schedule_handle(DAILY_CLOSE_SCHEDULE)
    try:
        await ensure_daily_close_schedule(client, task_queue, Settings(daily_close_at="20:00"))
        await ensure_daily_close_schedule(client, task_queue, Settings(daily_close_at="20:00"))  # a second worker
        hours, minutes, tz, action = await _calendar(handle)
        assert (hours, minutes, tz) == ([20], [0], "Asia/Shanghai")
        assert (action.workflow, action.task_queue) == (DAILY_CLOSE_WORKFLOW, task_queue)
        ids = [s.id async for s in await client.list_schedules()]
        assert ids.count(DAILY_CLOSE_SCHEDULE) <= 1  # listing is eventually consistent; never two

        await ensure_daily_close_schedule(client, task_queue, Settings(daily_close_at="21:30"))
        assert (await _calendar(handle))[:2] == ([21], [30])

        async with build_worker(client, task_queue):
            await handle.trigger()  # what the clock does at 21:30
            for _ in range(600):
                with Session(get_engine()) as s:
                    task = s.exec(select(HumanTask).where(HumanTask.task_type == "daily_close")).first()
                if task is not None:
                    break
                await asyncio.sleep(0.1)
            assert task is not None and task.workflow_id.startswith("daily-close-20")
            assert task.context["tickets"][0]["accession_number"] == "A1"
            await client.get_workflow_handle(task.workflow_id).terminate("test over")
    finally:
        await handle.delete()
