"""Critical value closed loop (R7.1.3, R8.7): notify, wait for a read-back, escalate.

Each rung of the ladder has its own deadline measured from the moment the rung
starts. Unanswered -> the next rung. When every delivery attempt of a rung
fails, the loop goes straight to the phone-call task (R7.1.3 (4)). The
acknowledgment is a validated update carrying the clinician's identity and
read-back; a completed phone-call task counts as the acknowledgment.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
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
        TaskOutcome,
    )
    from workflows.human_tasks import TaskBook
    from workflows.options import DB_ACTIVITY, NOTIFY_ACTIVITY


@workflow.defn(name=CRITICAL_VALUE_WORKFLOW)
class CriticalValueWorkflow:
    @workflow.init
    def __init__(self, inp: CriticalValueInput) -> None:
        self.inp = inp
        self.level = 0
        self.ack: CriticalAck | None = None
        self.ack_at = None
        self.phone_task: str | None = None
        self.seq = 0
        self.tasks = TaskBook(workflow.info().workflow_id, inp.accession_number, Priority.stat.rank)

    # ---- run ---------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: CriticalValueInput) -> CriticalResult:
        await workflow.execute_activity(
            record_critical_raised,
            CriticalRaised(critical_value_id=inp.critical_value_id, accession_number=inp.accession_number,
                           finding=inp.finding, raised_by=inp.raised_by.user_id, at=workflow.now()),
            **DB_ACTIVITY,
        )
        escalations = 0
        for i, rung in enumerate(inp.ladder):
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
            context={"finding": self.inp.finding, "critical_value_id": self.inp.critical_value_id,
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
        kind, rid = (
            ("user", self.inp.ordering_clinician_id) if rung.notify == "ordering_clinician"
            else ("department_oncall", self.inp.ordering_department)
        )
        try:
            await workflow.execute_activity(
                send_notification,
                Notice(
                    key=f"{self.inp.critical_value_id}/level-{self.level}", accession_number=self.inp.accession_number,
                    recipient_kind=kind, recipient_id=rid, purpose="critical_value",
                    critical_value_id=self.inp.critical_value_id, at=workflow.now(),
                    title=f"[CRITICAL] {self.inp.accession_number}",
                    body=f"Critical finding: {self.inp.finding}. Acknowledge with read-back "
                         f"(critical value {self.inp.critical_value_id}).",
                ),
                **NOTIFY_ACTIVITY,
            )
        except ActivityError:
            return False
        await self._change("notifying", f"level {self.level} notified: {rung.name}")
        return True

    async def _finish(self, channel: str, escalations: int) -> CriticalResult:
        ack = self.ack
        assert ack is not None
        await self._change(
            "acknowledged", f"acknowledged by {ack.clinician_name} ({channel}); read-back: {ack.read_back}",
            actor=ack.actor.user_id, acked_by=ack.actor.user_id, ack_name=ack.clinician_name,
            read_back=ack.read_back, ack_channel=channel, at=self.ack_at,
        )
        return CriticalResult(critical_value_id=self.inp.critical_value_id, acknowledged_by=ack.actor.user_id,
                              channel=channel, level=self.level, escalations=escalations)

    async def _change(self, state: str, summary: str, at=None, **ack) -> None:
        self.seq += 1
        await workflow.execute_activity(
            record_critical_change,
            CriticalChange(key=f"{self.inp.critical_value_id}/c{self.seq}", critical_value_id=self.inp.critical_value_id,
                           accession_number=self.inp.accession_number, at=at or workflow.now(), state=state,
                           level=self.level, summary=summary, **ack),
            **DB_ACTIVITY,
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
        if not read_back_names_finding(self.inp.finding, ack.read_back):
            raise ApplicationError(f"read-back must name the finding ({self.inp.finding})", type="Invalid")

    # ---- phone-call task -------------------------------------------------------------
    @workflow.update
    def complete_task(self, c: TaskCompletion) -> TaskOutcome:
        self.tasks.accept(c)
        return TaskOutcome(task_id=c.task_id)

    @complete_task.validator
    def _validate_task(self, c: TaskCompletion) -> None:
        form = self.tasks.validate(c)
        if not read_back_names_finding(self.inp.finding, form.read_back):
            raise ApplicationError(f"read-back must name the finding ({self.inp.finding})", type="Invalid")

    @workflow.query
    def status(self) -> CriticalStatus:
        return CriticalStatus(
            critical_value_id=self.inp.critical_value_id, level=self.level,
            level_name=self.inp.ladder[self.level].name if self.level < len(self.inp.ladder) else "phone call",
            acknowledged=self.ack is not None, acked_by=self.ack.actor.user_id if self.ack else None,
            phone_task_id=self.phone_task, open_tasks=self.tasks.views(),
        )
