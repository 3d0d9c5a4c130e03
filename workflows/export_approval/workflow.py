"""Bulk export of personal data (R10.3.4): request -> approval by someone else -> de-identified package
-> time-limited download -> gone.

1. The request (who, purpose, use, which exams) is recorded and audited.
2. An `export_approval` task waits in the managers' inbox. The decision is the
   `complete_task` update; its validator refuses the requester approving their
   own request, a wrong role or a bad form before anything reaches history.
   Nobody deciding within `approval_seconds` lapses the request.
3. Approved: the package is built (records pseudonymised, dates shifted by one
   offset per export, DICOM through the PS3.15 basic profile) and made
   downloadable by the requester for `download_seconds`.
4. The timer ends the link: the file is deleted and the row marked expired.
Every step leaves an audit record (EventID 110106).
"""
from __future__ import annotations

from typing import Any

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.exports import (
        BuildExport,
        ExpireExport,
        ExportDecided,
        ExportReady,
        build_export,
        expire_export,
        mark_export_ready,
        record_export_decision,
        record_export_requested,
    )
    from domain.enums import Priority, TaskType
    from domain.exports import EXPORT_APPROVAL_WORKFLOW, ExportInput, ExportResult, ExportState, ExportStatus
    from domain.loop import TaskCompletion
    from workflows.human_tasks import TaskBook, TaskCompletionUpdate
    from workflows.options import DB_ACTIVITY

BUILD_ACTIVITY = dict(
    start_to_close_timeout=timedelta(minutes=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=5), maximum_attempts=5),
)


@workflow.defn(name=EXPORT_APPROVAL_WORKFLOW)
class ExportApprovalWorkflow(TaskCompletionUpdate):
    @workflow.init
    def __init__(self, inp: ExportInput) -> None:
        self.inp = inp
        self.stage = ExportState.requested
        self.approver_id: str | None = None
        self.expires_at = None
        self.tasks = TaskBook(workflow.info().workflow_id, inp.export_id, Priority.routine.rank)

    @workflow.run
    async def run(self, inp: ExportInput) -> ExportResult:
        await workflow.execute_activity(record_export_requested, inp, **DB_ACTIVITY)
        task = await self.tasks.open_task(
            TaskType.export_approval, due=timedelta(seconds=inp.approval_seconds),
            context={"export_id": inp.export_id, "purpose": inp.purpose, "use": inp.use.value,
                     "requested_by": inp.requested_by.user_id, "requester_name": inp.requested_by.name,
                     "exams": len(inp.accession_numbers), "include_images": inp.include_images})
        try:
            await workflow.wait_condition(lambda: task in self.tasks.done, timeout=timedelta(seconds=inp.approval_seconds))
        except asyncio.TimeoutError:
            await self.tasks.close(task, state="cancelled")
            return await self._decided(ExportState.lapsed, None, "no decision within the approval window")
        await self.tasks.close(task)
        form, approver = self.tasks.form(task), self.tasks.actor(task)
        if form.decision == "reject":
            return await self._decided(ExportState.rejected, approver, form.reason)
        await self._decided(ExportState.approved, approver, form.reason)
        try:
            built = await workflow.execute_activity(build_export, BuildExport(export_id=inp.export_id, at=workflow.now()),
                                                    **BUILD_ACTIVITY)
        except ActivityError:
            self.stage = ExportState.failed
            await workflow.execute_activity(
                record_export_decision,
                ExportDecided(export_id=inp.export_id, state=ExportState.failed, approver=approver,
                              reason="the package could not be built", at=workflow.now()),
                **DB_ACTIVITY)
            return ExportResult(export_id=inp.export_id, state=self.stage, approver_id=self.approver_id)
        ready_at = workflow.now()
        self.expires_at = ready_at + timedelta(seconds=inp.download_seconds)
        await workflow.execute_activity(
            mark_export_ready, ExportReady(export_id=inp.export_id, ready_at=ready_at, expires_at=self.expires_at),
            **DB_ACTIVITY)
        self.stage = ExportState.ready
        await workflow.sleep(timedelta(seconds=inp.download_seconds))
        await workflow.execute_activity(expire_export, ExpireExport(export_id=inp.export_id, at=workflow.now()),
                                        **DB_ACTIVITY)
        self.stage = ExportState.expired
        return ExportResult(export_id=inp.export_id, state=self.stage, approver_id=self.approver_id,
                            records=built.records, instances=built.instances)

    async def _decided(self, state: ExportState, approver, reason: str) -> ExportResult:
        self.stage = state
        self.approver_id = approver.user_id if approver else None
        await workflow.execute_activity(
            record_export_decision,
            ExportDecided(export_id=self.inp.export_id, state=state, approver=approver, reason=reason, at=workflow.now()),
            **DB_ACTIVITY)
        return ExportResult(export_id=self.inp.export_id, state=state, approver_id=self.approver_id)

    # ---- the decision ----------------------------------------------------------------------
    def check_completion(self, c: TaskCompletion, form: Any) -> None:
        if c.actor.user_id == self.inp.requested_by.user_id:
            raise ApplicationError("an export is approved by someone other than its requester", type="Forbidden")

    @workflow.query
    def status(self) -> ExportStatus:
        return ExportStatus(export_id=self.inp.export_id, stage=self.stage, open_tasks=self.tasks.views(),
                            approver_id=self.approver_id, expires_at=self.expires_at)
