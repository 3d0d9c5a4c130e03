"""RadLoop worker: runs the loops' workflows and activities on one task queue.

Scale-out is Temporal's: start as many of these as needed against the same
cluster and database (see docker-compose.yml).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.booking import book_exam_slot, release_exam_slot
from activities.check_in import check_in_requirements, record_check_in
from activities.daily_close import apply_dispositions, list_unfinished, local_day
from activities.critical import (
    critical_ladder,
    critical_plan,
    record_critical_change,
    record_critical_raised,
    suggest_critical_items,
)
from activities.events import record_event
from activities.exam import record_exam_progress, record_image_grade
from activities.exports import (
    build_export,
    expire_export,
    mark_export_ready,
    record_export_decision,
    record_export_requested,
)
from activities.hl7_outbound import deliver_hl7, queue_order_status, queue_report_message
from activities.notifications import send_notification
from activities.loop_steps import advance_loop_step
from activities.orders import apply_order_fix, run_order_qc, set_order_step
from activities.order_changes import apply_order_change
from activities.reports import publish_report, save_report_version, sign_report
from activities.scheduling import (
    book_earliest_slot,
    enqueue_patient,
    first_room_for,
    release_slot,
    set_queue_state,
    set_worklist_status,
    withdraw_worklist_entries,
    write_worklist_entry,
)
from activities.tasks import cancel_open_tasks, close_task, open_task
from core.bytecode import ensure_workflow_bytecode
from core.config import get_settings
from core.temporal import connect
from security.startup import refuse_insecure_start
from workflows.critical_value.workflow import CriticalValueWorkflow
from workflows.exam_loop.workflow import ExamLoopWorkflow
from workflows.export_approval.workflow import ExportApprovalWorkflow
from workflows.daily_close.schedule import ensure_daily_close_schedule
from workflows.daily_close.workflow import DailyCloseWorkflow

WORKFLOWS = [ExamLoopWorkflow, CriticalValueWorkflow, ExportApprovalWorkflow, DailyCloseWorkflow]
ACTIVITIES = [
    record_event, run_order_qc, apply_order_fix, apply_order_change, set_order_step, advance_loop_step,
    book_earliest_slot, first_room_for, release_slot, write_worklist_entry, withdraw_worklist_entries,
    book_exam_slot, release_exam_slot, check_in_requirements, record_check_in,
    set_worklist_status, enqueue_patient, set_queue_state,
    open_task, close_task, cancel_open_tasks,
    record_exam_progress, record_image_grade,
    save_report_version, sign_report, publish_report,
    send_notification, record_critical_raised, record_critical_change, critical_ladder,
    critical_plan, suggest_critical_items,
    queue_report_message, queue_order_status, deliver_hl7,
    record_export_requested, record_export_decision, build_export, mark_export_ready, expire_export,
    list_unfinished, apply_dispositions, local_day,
]


# On SIGTERM the worker stops polling and lets running activities finish this long (their
# results are reported, not left to time out and retry); the launcher's grace period is longer.
SHUTDOWN_GRACE = timedelta(seconds=5)


def build_worker(
    client: Client, task_queue: str | None = None, executor: concurrent.futures.Executor | None = None,
    graceful_shutdown: timedelta = timedelta(0),
) -> Worker:
    """The one place that lists what a RadLoop worker runs (tests use it too)."""
    ensure_workflow_bytecode()  # the sandbox re-imports workflow modules for every run
    return Worker(
        client,
        task_queue=task_queue or get_settings().temporal_task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        activity_executor=executor or concurrent.futures.ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
        graceful_shutdown_timeout=graceful_shutdown,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    await asyncio.to_thread(refuse_insecure_start, "worker")  # production: no demo users, no dev keys
    client = await connect()
    worker = build_worker(client, graceful_shutdown=SHUTDOWN_GRACE)
    await ensure_daily_close_schedule(client)  # R6.3: the day's close starts on a Temporal Schedule
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    logging.info("worker polling task queue %s", get_settings().temporal_task_queue)
    async with worker:
        await stopping.wait()
        logging.info("stopping: no new tasks, running activities get %ss", SHUTDOWN_GRACE.seconds)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
