"""A worker killed mid-loop and restarted continues the loop with nothing lost (dev server)."""
from __future__ import annotations

import asyncio
import signal

from sqlmodel import Session, select

from core.db import get_engine
from domain.enums import Role
from domain.loop import ExamEvent
from domain.tables import ExamRecord, HumanTask
from services import loop_commands
from tests.support.loop_driver import LoopDriver, actor
from tests.support.worker_process import start_worker



async def test_killed_worker_resumes_the_loop(dev_env, sqlite_database, task_queue, notify_sink) -> None:
    worker = start_worker(dev_env, task_queue)
    try:
        d = LoopDriver(dev_env.client, task_queue)
        acc = await d.arrived()
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        # The technologist starts the exam while no worker is alive: the update waits.
        started = asyncio.create_task(loop_commands.record_exam_event(
            dev_env.client, acc, ExamEvent(kind="started", actor=actor(Role.technologist))))
        await asyncio.sleep(1.0)
        assert not started.done()
        worker = start_worker(dev_env, task_queue)
        ack = await asyncio.wait_for(started, 120)
        assert ack.accepted
        await d.wait_step(acc, "in_exam", timeout=60)
        await d.perform_exam(acc)
        await d.grade(acc, "A")
        await d.report(acc)
        await d.wait_step(acc, "published", timeout=60)
        with Session(get_engine()) as s:
            exams = s.exec(select(ExamRecord).where(ExamRecord.accession_number == acc)).all()
            assert len(exams) == 1 and exams[0].started_at and exams[0].completed_at
            tasks = s.exec(select(HumanTask).where(HumanTask.accession_number == acc)).all()
            assert sorted(t.task_type for t in tasks) == sorted(
                ["check_in", "perform_exam", "image_qc", "report_draft", "report_preliminary", "report_review"])
            assert all(t.state == "done" for t in tasks)
    finally:
        worker.kill()
        worker.wait(timeout=10)


async def test_sigterm_stops_the_worker_cleanly_and_the_loop_goes_on_after_a_restart(
        dev_env, sqlite_database, task_queue, notify_sink) -> None:
    worker = start_worker(dev_env, task_queue)
    try:
        d = LoopDriver(dev_env.client, task_queue)
        acc = await d.arrived()
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 15) == 0  # stopped by itself, not killed
        worker = start_worker(dev_env, task_queue)
        ack = await asyncio.wait_for(loop_commands.record_exam_event(
            dev_env.client, acc, ExamEvent(kind="started", actor=actor(Role.technologist))), 120)
        assert ack.accepted
        await d.wait_step(acc, "in_exam", timeout=60)
    finally:
        worker.kill()
        worker.wait(timeout=10)
