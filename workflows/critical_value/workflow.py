"""Critical value closed loop (R7.1.3, R8.7): verify, notify, read back, escalate, act.

1. A critical value raised by a junior is first verified by a senior (own timer;
   overdue -> the radiology senior on duty is paged).
2. Each rung of the ladder notifies its people over every channel of the
   department in parallel and waits its own deadline, measured from the moment
   the rung starts; unanswered -> the next rung. When every delivery attempt of
   a rung fails, the loop goes straight to the phone-call task (R7.1.3 (4)) and,
   once a channel works again, back-fills the electronic notice.
3. The acknowledgment is a validated update carrying the clinician's identity and
   a read-back naming the finding; a recorded phone call counts as it.
4. The clinician records the action taken within its deadline; only then is the
   loop closed: sent, received, acknowledged and acted upon.

Versioning: inputs from before the dictionary have `response_seconds=None` and
`needs_verification=False`, so they take exactly the commands they took then.
"""
from __future__ import annotations

from typing import Any

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.critical import (
        CriticalChange,
        CriticalRaised,
        record_critical_change,
        record_critical_raised,
    )
    from activities.notifications import Notice, send_notification
    from domain.critical import read_back_names_finding
    from domain.enums import Priority, Role, TaskType
    from domain.loop import (
        CRITICAL_VALUE_WORKFLOW,
        CriticalAck,
        CriticalResult,
        CriticalStatus,
        CriticalValueInput,
        EscalationLevel,
        TaskCompletion,
    )
    from workflows.human_tasks import TaskBook, TaskCompletionUpdate
    from workflows.db_writes import run_db
    from workflows.options import NOTIFY_ACTIVITY

# Rung -> (recipient kind, whose id) for the notification activity.
RUNG_RECIPIENT = {
    "ordering_clinician": "user",
    "department_oncall": "department_oncall",
    "backup_clinician": "backup_clinician",
    "department_head": "department_head",
    "duty_officer": "duty_officer",
}
BACKFILL_ACTIVITY = dict(
    start_to_close_timeout=timedelta(seconds=20),
    schedule_to_close_timeout=timedelta(days=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=30), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=5)),
)


@workflow.defn(name=CRITICAL_VALUE_WORKFLOW)
class CriticalValueWorkflow(TaskCompletionUpdate):
    @workflow.init
    def __init__(self, inp: CriticalValueInput) -> None:
        self.inp = inp
        self.finding = inp.finding
        self.level = 0
        self.stage = "verifying" if inp.needs_verification else "notifying"
        self.ack: CriticalAck | None = None
        self.ack_at = None
        self.phone_task: str | None = None
        self.outage = False
        self.seq = 0
        self.tasks = TaskBook(workflow.info().workflow_id, inp.accession_number, Priority.stat.rank)

    # ---- run ---------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: CriticalValueInput) -> CriticalResult:
        await run_db(
            record_critical_raised,
            CriticalRaised(critical_value_id=inp.critical_value_id, accession_number=inp.accession_number,
                           finding=inp.finding, raised_by=inp.raised_by.user_id, at=workflow.now(),
                           item_code=inp.item_code, dictionary_version=inp.dictionary_version,
                           raised_by_role=inp.raised_by.role.value, ordering_department=inp.ordering_department,
                           deadline_seconds=inp.deadline_seconds, needs_verification=inp.needs_verification)
        )
        if inp.needs_verification and not await self._verify():
            self.stage = "closed"
            return CriticalResult(critical_value_id=inp.critical_value_id, acknowledged_by="",
                                  channel="not_confirmed", level=0, escalations=0)
        self.stage = "notifying"
        result = await self._ladder()
        if inp.response_seconds is not None:
            self.stage = "awaiting_action"
            await self._clinical_response(inp.response_seconds)
            if self.outage and workflow.patched("critical-backfill"):
                await self._backfill()
            await self._change("closed", "closed: sent, received, acknowledged and acted upon",
                               escalations=result.escalations, closed=True)
        self.stage = "closed"
        return result

    # ---- 1. verification by a senior ------------------------------------------------------
    async def _verify(self) -> bool:
        task = await self.tasks.open_task(
            TaskType.critical_verify, due=timedelta(seconds=self.inp.verify_seconds),
            context={"finding": self.finding, "item_code": self.inp.item_code, "item_name": self.inp.item_name,
                     "raised_by": self.inp.raised_by.user_id, "critical_value_id": self.inp.critical_value_id})
        try:
            await workflow.wait_condition(lambda: task in self.tasks.done, timeout=timedelta(seconds=self.inp.verify_seconds))
        except asyncio.TimeoutError:
            await self._page("senior_radiologist", "radiology", "Critical value awaiting verification",
                             purpose="critical_verification")
            await self._change("verification_overdue", "verification overdue: radiology senior on duty paged")
            await workflow.wait_condition(lambda: task in self.tasks.done)
        await self.tasks.close(task)
        form = self.tasks.form(task)
        senior = self.tasks.actor(task).user_id
        if form.decision == "reject":
            await self._change("not_confirmed", f"not confirmed by {senior}: {form.comment}", actor=senior, closed=True)
            return False
        self.finding = form.finding or self.finding
        await self._change("verified", f"verified by {senior}: {self.finding}", actor=senior,
                           verified_by=senior, finding=self.finding)
        return True

    # ---- 2-3. the ladder ------------------------------------------------------------------
    async def _ladder(self) -> CriticalResult:
        escalations = 0
        for i, rung in enumerate(self.inp.ladder):
            self.level = i
            if i > 0:
                escalations += 1
                await self._change("escalated", f"escalated to level {i}: {rung.name}")
            if rung.notify == "phone_call_task":
                return await self._phone_call(rung, escalations)
            deadline = workflow.now() + timedelta(seconds=rung.wait_seconds)
            if not await self._notify(rung):
                # Every channel failed: do not wait out the timer, phone now.
                escalations += 1
                self.outage = True
                await self._change("escalated", "notification failed on every attempt: phone call now")
                return await self._phone_call(self._phone_rung(), escalations)
            try:
                await workflow.wait_condition(
                    lambda: self.ack is not None, timeout=max(deadline - workflow.now(), timedelta(0))
                )
            except asyncio.TimeoutError:
                continue
            return await self._finish("ack", escalations)
        return await self._phone_call(self._phone_rung(), escalations)

    def _phone_rung(self) -> EscalationLevel:
        rung = next((r for r in self.inp.ladder if r.notify == "phone_call_task"), None)
        return rung or EscalationLevel(name="phone call", notify="phone_call_task", wait_seconds=300)

    async def _phone_call(self, rung: EscalationLevel, escalations: int) -> CriticalResult:
        self.phone_task = await self.tasks.open_task(
            TaskType.critical_phone_call,
            context={"finding": self.finding, "critical_value_id": self.inp.critical_value_id,
                     "ordering_clinician_id": self.inp.ordering_clinician_id,
                     "ordering_department": self.inp.ordering_department},
            due=timedelta(seconds=rung.wait_seconds),
        )
        await self._change("phone_call", "phone-call task opened for radiology staff")
        task = self.phone_task
        await workflow.wait_condition(lambda: self.ack is not None or task in self.tasks.done)
        if task in self.tasks.done:
            await self.tasks.close(task)
            c = self.tasks.done[task]
            form = self.tasks.form(task)
            self.ack = CriticalAck(actor=c.actor, clinician_name=form.called_person_name, read_back=form.read_back)
            self.ack_at = workflow.now()
            return await self._finish("phone_call", escalations)
        await self.tasks.close(task, state="cancelled")
        return await self._finish("ack", escalations)

    async def _notify(self, rung: EscalationLevel) -> bool:
        kind = RUNG_RECIPIENT[rung.notify]
        rid = self.inp.ordering_clinician_id if kind == "user" else self.inp.ordering_department
        try:
            await workflow.execute_activity(
                send_notification,
                Notice(
                    key=f"{self.inp.critical_value_id}/level-{self.level}", accession_number=self.inp.accession_number,
                    recipient_kind=kind, recipient_id=rid, purpose="critical_value",
                    critical_value_id=self.inp.critical_value_id, at=workflow.now(),
                    department_id=self.inp.ordering_department if self.inp.response_seconds is not None else None,
                    title=f"[CRITICAL] {self.inp.accession_number}",
                    body=f"Critical finding: {self.finding}. Acknowledge with read-back "
                         f"(critical value {self.inp.critical_value_id}).",
                ),
                **NOTIFY_ACTIVITY,
            )
        except ActivityError:
            return False
        await self._change("notifying", f"level {self.level} notified: {rung.name}", notified=True)
        return True

    async def _finish(self, channel: str, escalations: int) -> CriticalResult:
        ack = self.ack
        assert ack is not None
        await self._change(
            "acknowledged", f"acknowledged by {ack.clinician_name} ({channel}); read-back: {ack.read_back}",
            actor=ack.actor.user_id, acked_by=ack.actor.user_id, ack_name=ack.clinician_name,
            read_back=ack.read_back, ack_channel=channel, at=self.ack_at, escalations=escalations,
        )
        return CriticalResult(critical_value_id=self.inp.critical_value_id, acknowledged_by=ack.actor.user_id,
                              channel=channel, level=self.level, escalations=escalations)

    # ---- 4. clinical response and back-fill ------------------------------------------------
    async def _clinical_response(self, seconds: int) -> None:
        task = await self.tasks.open_task(
            TaskType.critical_response, due=timedelta(seconds=seconds),
            context={"finding": self.finding, "critical_value_id": self.inp.critical_value_id,
                     "ordering_clinician_id": self.inp.ordering_clinician_id})
        try:
            await workflow.wait_condition(lambda: task in self.tasks.done, timeout=timedelta(seconds=seconds))
        except asyncio.TimeoutError:
            await self._page("department_head", self.inp.ordering_department,
                             "Critical value: no clinical action recorded", purpose="critical_response_overdue")
            await self._change("response_overdue", "clinical action overdue: department head reminded")
            await workflow.wait_condition(lambda: task in self.tasks.done)
        await self.tasks.close(task)
        form = self.tasks.form(task)
        await self._change("acted", f"action recorded: {form.action_taken}", actor=self.tasks.actor(task).user_id,
                           action_taken=form.action_taken)

    async def _backfill(self) -> None:
        """After an outage handled by phone, the electronic notice is sent once channels return."""
        try:
            await workflow.execute_activity(
                send_notification,
                Notice(key=f"{self.inp.critical_value_id}/backfill", accession_number=self.inp.accession_number,
                       recipient_kind="user", recipient_id=self.inp.ordering_clinician_id, purpose="critical_backfill",
                       critical_value_id=self.inp.critical_value_id, at=workflow.now(),
                       department_id=self.inp.ordering_department,
                       title=f"[CRITICAL, back-filled] {self.inp.accession_number}",
                       body=f"Record of a critical finding handled by phone during a channel outage: {self.finding}."),
                **BACKFILL_ACTIVITY,
            )
        except ActivityError:
            await self._change("backfill_failed", "back-fill not delivered within 2 days")
            return
        await self._change("backfilled", "electronic record back-filled after the outage")

    async def _page(self, kind: str, rid: str, title: str, purpose: str) -> None:
        try:
            await workflow.execute_activity(
                send_notification,
                Notice(key=f"{self.inp.critical_value_id}/{purpose}", accession_number=self.inp.accession_number,
                       recipient_kind=kind, recipient_id=rid, purpose=purpose,
                       critical_value_id=self.inp.critical_value_id, at=workflow.now(),
                       title=f"{title} ({self.inp.accession_number})", body=f"Finding: {self.finding}"),
                **NOTIFY_ACTIVITY,
            )
        except ActivityError as err:
            # A failed reminder must not stop the loop; its attempt rows show the failure.
            workflow.logger.warning("reminder %s for %s not delivered: %s", purpose, self.inp.critical_value_id, err)

    async def _change(self, state: str, summary: str, at=None, **extra) -> None:
        self.seq += 1
        await run_db(
            record_critical_change,
            CriticalChange(key=f"{self.inp.critical_value_id}/c{self.seq}", critical_value_id=self.inp.critical_value_id,
                           accession_number=self.inp.accession_number, at=at or workflow.now(), state=state,
                           level=self.level, summary=summary, **extra)
        )

    # ---- acknowledgment ------------------------------------------------------------
    @workflow.update
    def acknowledge(self, ack: CriticalAck) -> CriticalStatus:
        if self.ack is None:
            self.ack = ack
            self.ack_at = workflow.now()
        return self.status()

    @acknowledge.validator
    def _validate_ack(self, ack: CriticalAck) -> None:
        if ack.actor.role != Role.clinician:
            raise ApplicationError("only a clinician can acknowledge a critical value", type="Forbidden")
        if self.ack is not None:
            return  # a second acknowledgment is accepted and changes nothing
        if self.stage == "verifying":
            raise ApplicationError("the critical value is still being verified", type="Conflict")
        if self.stage == "closed":
            raise ApplicationError("the critical value was not confirmed", type="Conflict")
        if not read_back_names_finding(self.finding, ack.read_back):
            raise ApplicationError(f"read-back must name the finding ({self.finding})", type="Invalid")

    # ---- tasks: verification, phone call, clinical response ------------------------------
    def check_completion(self, c: TaskCompletion, form: Any) -> None:
        task_type = self.tasks.open[c.task_id]
        if task_type == TaskType.critical_phone_call and not read_back_names_finding(self.finding, form.read_back):
            raise ApplicationError(f"read-back must name the finding ({self.finding})", type="Invalid")
        if task_type == TaskType.critical_verify and c.actor.user_id == self.inp.raised_by.user_id:
            raise ApplicationError("a critical value is verified by someone other than who raised it", type="Forbidden")

    @workflow.query
    def status(self) -> CriticalStatus:
        return CriticalStatus(
            critical_value_id=self.inp.critical_value_id, level=self.level,
            level_name=self.inp.ladder[self.level].name if self.level < len(self.inp.ladder) else "phone call",
            acknowledged=self.ack is not None, acked_by=self.ack.actor.user_id if self.ack else None,
            phone_task_id=self.phone_task, open_tasks=self.tasks.views(), stage=self.stage,
        )
