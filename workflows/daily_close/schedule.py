"""The Temporal Schedule that starts each day's close at `RADLOOP_DAILY_CLOSE_AT`, centre's local time.

Registered when a worker starts; creating it again is a no-op (another worker, a restart).
A changed time or timezone is applied to the existing schedule.
"""
from __future__ import annotations

import logging

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from activities.daily_close import DAILY_CLOSE_SCHEDULE, DAILY_CLOSE_WORKFLOW, DailyCloseInput
from core.config import Settings, get_settings

log = logging.getLogger(__name__)


def daily_close_schedule(settings: Settings, task_queue: str) -> Schedule:
    hour, minute = (int(p) for p in settings.daily_close_at.split(":"))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DAILY_CLOSE_WORKFLOW, DailyCloseInput(timezone=settings.timezone),
            id=f"{DAILY_CLOSE_SCHEDULE}-scheduled", task_queue=task_queue),
        spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])],
                          time_zone_name=settings.timezone),
    )


async def ensure_daily_close_schedule(client: Client, task_queue: str | None = None,
                                      settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    schedule = daily_close_schedule(settings, task_queue or settings.temporal_task_queue)
    try:
        await client.create_schedule(DAILY_CLOSE_SCHEDULE, schedule)
        log.info("daily-close schedule created for %s %s", settings.daily_close_at, settings.timezone)
    except ScheduleAlreadyRunningError:
        async def _same(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)
        await client.get_schedule_handle(DAILY_CLOSE_SCHEDULE).update(_same)
