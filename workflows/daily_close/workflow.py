"""Daily close (R6.3 (7)): every checked-in patient of the day is finished or explicitly handled.

1. The day's unfinished queue tickets are listed (waiting or called, never finished nor left).
   None: the day is closed and the workflow ends.
2. Otherwise one `daily_close` task waits in the registrars' and nurses' inboxes, its context
   listing each ticket (accession, room, state, masked name). The `complete_task` update's
   validator refuses a completion that does not give every listed ticket a disposition.
   While the task is past its due time, the department head is reminded once, then daily.
3. The dispositions are applied through the queue's own finish/leave moves, the reason in the
   call log; a ticket closed meanwhile at a desk is left as it is.

The workflow ID is the business key (`daily-close-<day>`). The Temporal Schedule starts a run
without a day: that run works out today's local date and starts the day's close as an abandoned
child under that ID, so a schedule firing and a manager's start never close a day twice.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.daily_close import (
        DAILY_CLOSE_WORKFLOW,
        ApplyDispositions,
        DailyCloseInput,
        DailyCloseResult,
        DailyCloseStatus,
        Disposition,
        LocalDay,
        apply_dispositions,
        daily_close_workflow_id,
        list_unfinished,
        local_day,
    )
    from activities.notifications import Notice, send_notification
    from domain.enums import Priority, TaskType
    from domain.loop import TaskCompletion
    from domain.task_forms import DailyCloseForm, task_spec
    from workflows.human_tasks import TaskBook, TaskCompletionUpdate
    from workflows.options import DB_ACTIVITY, DB_LOCAL_ACTIVITY, NOTIFY_ACTIVITY

REMIND_EVERY = timedelta(days=1)


@workflow.defn(name=DAILY_CLOSE_WORKFLOW)
class DailyCloseWorkflow(TaskCompletionUpdate):
    @workflow.init
    def __init__(self, inp: DailyCloseInput) -> None:
        self.tickets: list[str] = []
        self.reminders = 0
        self.day = inp.day
        wid = workflow.info().workflow_id
        self.tasks = TaskBook(wid, wid, Priority.routine.rank)

    @workflow.run
    async def run(self, inp: DailyCloseInput) -> DailyCloseResult:
        if inp.day is None:
            return await self._start_today(inp)
        lines = await workflow.execute_activity(list_unfinished, inp.day, **DB_ACTIVITY)
        if not lines:
            return DailyCloseResult(day=inp.day)
        self.tickets = [t.id for t in lines]
        task = await self.tasks.open_task(TaskType.daily_close, context={
            "day": inp.day.isoformat(),
            "tickets": [{"ticket_id": t.id, "accession_number": t.accession_number, "room_id": t.room_id,
                         "queue_id": t.queue_id, "state": t.state, "patient": t.patient} for t in lines],
        })
        await self._wait_reminding(task, inp, len(lines))
        await self.tasks.close(task)
        form: DailyCloseForm = self.tasks.form(task)
        await workflow.execute_activity(apply_dispositions, ApplyDispositions(
            day=inp.day, actor_id=self.tasks.actor(task).user_id,
            dispositions=[Disposition(ticket_id=d.ticket_id, disposition=d.disposition, reason=d.reason)
                          for d in form.dispositions]), **DB_ACTIVITY)
        return DailyCloseResult(
            day=inp.day, listed=len(lines), task_id=task,
            finished=sum(d.disposition == "finished" for d in form.dispositions),
            left=sum(d.disposition == "left" for d in form.dispositions), reminders=self.reminders)

    async def _wait_reminding(self, task: str, inp: DailyCloseInput, listed: int) -> None:
        """Wait for the task; past its due time remind the department head, then once a day."""
        wait = task_spec(TaskType.daily_close).due
        while True:
            try:
                await workflow.wait_condition(lambda: task in self.tasks.done, timeout=wait)
                return
            except asyncio.TimeoutError:
                self.reminders += 1
                await self._remind(task, inp, listed)
                wait = REMIND_EVERY

    async def _remind(self, task: str, inp: DailyCloseInput, listed: int) -> None:
        """Informational: a failed delivery is recorded by the activity and never blocks the close."""
        wid = workflow.info().workflow_id
        try:
            await workflow.execute_activity(send_notification, Notice(
                key=f"{wid}/remind-{self.reminders}", accession_number=wid, recipient_kind="department_head",
                recipient_id=inp.department_id, department_id=inp.department_id, at=workflow.now(),
                title=f"Daily close overdue ({inp.day})",
                body=f"{listed} patient(s) of {inp.day} still need a disposition: task {task}."), **NOTIFY_ACTIVITY)
        except ActivityError:  # the attempt row says why; the task stays in the inbox, overdue
            workflow.logger.warning("daily close %s: reminder %d not delivered", inp.day, self.reminders)

    async def _start_today(self, inp: DailyCloseInput) -> DailyCloseResult:
        day = await workflow.execute_local_activity(local_day, LocalDay(timezone=inp.timezone, at=workflow.now()),
                                                    **DB_LOCAL_ACTIVITY)
        wid = daily_close_workflow_id(day)
        try:
            await workflow.start_child_workflow(
                DAILY_CLOSE_WORKFLOW, DailyCloseInput(day=day, timezone=inp.timezone), id=wid,
                parent_close_policy=ParentClosePolicy.ABANDON)
        except WorkflowAlreadyStartedError:
            workflow.logger.info("daily close %s was already started (by a manager or an earlier run)", day)
        return DailyCloseResult(day=day, started=wid)

    @workflow.query
    def status(self) -> DailyCloseStatus:
        return DailyCloseStatus(day=self.day, tickets=self.tickets, open_tasks=self.tasks.views(),
                                reminders=self.reminders)

    def check_completion(self, c: TaskCompletion, form: DailyCloseForm) -> None:
        given = {d.ticket_id for d in form.dispositions}
        missing = [t for t in self.tickets if t not in given]
        if missing:
            raise ApplicationError(f"every listed patient needs a disposition; missing: {', '.join(missing)}",
                                   type="Invalid")
        unknown = sorted(given - set(self.tickets))
        if unknown:
            raise ApplicationError(f"not on this day's list: {', '.join(unknown)}", type="Invalid")
