"""Record loop histories for the replay tests (run when a workflow version ships).

    .venv/bin/python scripts/record_histories.py <tag>

Runs representative scenarios on the real dev server (the time-skipping test
server writes update events that the replayer cannot replay) with a short
critical-value ladder and correction window, against a throwaway SQLite
database, and writes each history to
`tests/workflows/histories/<workflow>-<scenario>-<tag>.json`. Replaying them with
the current code (tests/workflows/test_replay.py) proves a change does not break
loops already running.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "tests" / "workflows" / "histories"


async def record(tag: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="radloop-record-"))
    os.environ |= {
        "RADLOOP_DATABASE_URL": f"sqlite:///{tmp / 'radloop.db'}", "RADLOOP_DATA_DIR": str(tmp),
        "RADLOOP_CRITICAL_ACK_DEADLINE_SECONDS": "3", "RADLOOP_CRITICAL_ESCALATION_SECONDS": "3",
        "RADLOOP_CORRECTION_WINDOW_DAYS": "0.0002",  # about 17 s
    }
    from sqlmodel import Session
    from temporalio.testing import WorkflowEnvironment

    from core.config import reset_settings_cache
    from core.db import get_engine
    from core.migrate import upgrade_head
    from core.seed import seed_demo
    from core.temporal import data_converter, dev_server_search_attribute_args
    from domain.enums import Role
    from domain.loop import (
        CancelRequest, CorrectionRequest, CriticalAck, CriticalRaise, ExamEvent, RescheduleRequest,
        critical_value_workflow_id, exam_loop_workflow_id,
    )
    from services import loop_commands
    from tests.support.critical import result as critical_result
    from tests.support.loop_driver import LoopDriver, actor, closed_result
    from tests.support.notify_sink import NotifySink
    from worker import build_worker

    from domain.critical_dictionary import SEED_ITEMS
    from domain.critical_tables import CriticalDictionaryVersion

    upgrade_head()
    with Session(get_engine()) as s:
        seed_demo(s)
        # A dictionary version with a 3-second ladder, so escalation shows in seconds.
        items = [i.model_copy(deep=True) for i in SEED_ITEMS]
        for item in items:
            for rung in item.ladder:
                rung.wait_seconds = 3
        s.add(CriticalDictionaryVersion(version=2, created_by="recorder", items=[i.model_dump(mode="json") for i in items]))
        s.commit()
    with NotifySink() as sink:
        os.environ["RADLOOP_NOTIFY_DEFAULT_URL"] = sink.url
        reset_settings_cache()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"), ui=False,
            dev_server_extra_args=dev_server_search_attribute_args(), data_converter=data_converter())
        tq = f"record-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, tq):
            d = LoopDriver(env.client, tq)
            # 1. Full loop: re-exam, critical finding escalated once then acked, a correction, closed.
            acc = (await d.place()).accession_number
            await d.check_in(acc)
            await d.perform_exam(acc, contrast=True)
            await d.grade(acc, "D", reason="motion")
            await d.perform_exam(acc)
            await d.grade(acc, "A")
            await d.report(acc, critical_finding="tension pneumothorax", critical_item_code="tension_pneumothorax")
            cv = critical_value_workflow_id(acc, 1)
            await d.wait_step(acc, "published")
            await asyncio.sleep(4)
            await loop_commands.acknowledge_critical(env.client, cv, CriticalAck(
                actor=actor(Role.clinician), clinician_name="孙医生", read_back="tension pneumothorax"))
            await d.complete_in(cv, "critical_response", Role.clinician, {"action_taken": "chest drain"})
            await loop_commands.request_correction(env.client, acc, CorrectionRequest(actor=actor(Role.clinician), reason="side"))
            await d.complete(acc, "correction_review", Role.senior_radiologist, {"decision": "accept", "reason": "ok"})
            await d.complete(acc, "correction_amend", Role.radiologist, {"kind": "simple", "findings": "f2", "impression": "i2"})
            await d.complete(acc, "report_review", Role.senior_radiologist, {"action": "sign", "findings": "f2", "impression": "i2"})
            # 3. Raised during the exam by the technologist, verified by a senior, acked, acted on.
            acc3 = (await d.place()).accession_number
            await d.check_in(acc3)
            await d.wait_step(acc3, "arrived")
            await loop_commands.record_exam_event(env.client, acc3, ExamEvent(kind="started", actor=actor(Role.technologist)))
            await d.wait_step(acc3, "in_exam")
            await loop_commands.raise_critical(env.client, acc3, CriticalRaise(
                actor=actor(Role.technologist), finding="主动脉夹层", item_code="aortic_dissection"))
            cv3 = critical_value_workflow_id(acc3, 1)
            await d.complete_in(cv3, "critical_verify", Role.senior_radiologist, {"decision": "confirm"})
            await asyncio.sleep(1)
            await loop_commands.acknowledge_critical(env.client, cv3, CriticalAck(
                actor=actor(Role.clinician), clinician_name="孙医生", read_back="主动脉夹层"))
            await d.complete_in(cv3, "critical_response", Role.clinician, {"action_taken": "vascular surgery consulted"})
            await critical_result(env.client, cv3, timeout=30)
            # 2. Cancelled after check-in.
            acc2 = (await d.place()).accession_number
            await d.check_in(acc2)
            await d.wait_step(acc2, "arrived")
            await loop_commands.cancel(env.client, acc2, CancelRequest(actor=actor(Role.registrar), reason="patient left"))
            await closed_result(env.client, exam_loop_workflow_id(acc2))
            # 4. Slot pool (booking-slot-pool): a contrast CT refused for want of an eGFR, booked
            #    from the registrar's task, rescheduled (slot released, rebooked), then cancelled.
            acc4 = (await d.place(procedure={"code": "CT-ABD-C", "name": "CT abdomen contrast", "modality": "CT",
                                             "body_part": "ABDOMEN"})).accession_number
            await d.complete(acc4, "schedule_exam", Role.registrar, {
                "action": "retry", "egfr": 80, "egfr_at": datetime.now(timezone.utc).isoformat()})
            first_check_in = await d.wait_task(exam_loop_workflow_id(acc4), "check_in")
            await loop_commands.reschedule(env.client, acc4, RescheduleRequest(
                actor=actor(Role.registrar), reason="patient asked", not_before=datetime.now(timezone.utc) + timedelta(days=3)))
            while not any(t.task_type == "check_in" and t.task_id != first_check_in
                          for t in (await d.status(acc4)).open_tasks):
                await asyncio.sleep(0.1)
            await loop_commands.cancel(env.client, acc4, CancelRequest(actor=actor(Role.registrar), reason="not needed"))
            await closed_result(env.client, exam_loop_workflow_id(acc4))
            await closed_result(env.client, exam_loop_workflow_id(acc), timeout=60)
            # 5. Daily close: two unfinished patients, a refused completion, then one disposition each.
            close_id = await _daily_close(env.client, tq, d)
            OUT.mkdir(parents=True, exist_ok=True)
            for name, wid in [("exam_loop-full", exam_loop_workflow_id(acc)), ("critical_value-escalated", cv),
                              ("exam_loop-cancelled", exam_loop_workflow_id(acc2)),
                              ("critical_value-verified", cv3), ("exam_loop-rescheduled", exam_loop_workflow_id(acc4)),
                              ("daily_close-two", close_id)]:
                history = await env.client.get_workflow_handle(wid).fetch_history()
                path = OUT / f"{name}-{tag}.json"
                # The workflow ID matters on replay (task IDs derive from it), so keep it.
                path.write_text(json.dumps({"workflow_id": wid, "history": json.loads(history.to_json())}, indent=1))
                print(f"wrote {path.relative_to(ROOT)} ({len(history.events)} events)")
        await env.shutdown()


async def _daily_close(client, tq: str, d) -> str:
    from sqlmodel import Session

    from activities.daily_close import DAILY_CLOSE_WORKFLOW, DailyCloseInput, DailyCloseStatus, daily_close_workflow_id
    from core.db import get_engine
    from domain.enums import Role
    from domain.queueing.policy import PatientTraits
    from services import loop_commands, queueing
    from services.errors import Invalid
    from tests.support.loop_driver import actor
    from domain.loop import TaskCompletion

    with Session(get_engine()) as s:
        queueing.define_queue(s, "q-record", "CT", ["REC1"])
        s.commit()
    queueing.join("R-1", "张三", "q-record", PatientTraits(age=40), "u-registrar")
    queueing.join("R-2", "李四", "q-record", PatientTraits(age=40), "u-registrar")
    queueing.call_next("REC1", "u-tech")
    from zoneinfo import ZoneInfo

    from core.config import get_settings

    day = datetime.now(timezone.utc).astimezone(ZoneInfo(get_settings().timezone)).date()
    wid = daily_close_workflow_id(day)
    handle = await client.start_workflow(DAILY_CLOSE_WORKFLOW, DailyCloseInput(day=day), id=wid, task_queue=tq)
    task = await d.wait_task(wid, "daily_close")
    tickets = (await handle.query("status", result_type=DailyCloseStatus)).tickets  # demo data may add some
    try:
        await loop_commands.complete_task(client, wid, TaskCompletion(task_id=task, actor=actor(Role.registrar), data={
            "dispositions": [{"ticket_id": tickets[0], "disposition": "finished"}]}))  # the others missing
        raise AssertionError("a close missing a disposition was accepted")
    except Invalid as refused:  # the validator's refusal leaves nothing in history
        print(f"daily close: refused as expected ({refused})")
    await loop_commands.complete_task(client, wid, TaskCompletion(task_id=task, actor=actor(Role.registrar), data={
        "dispositions": [{"ticket_id": t, "disposition": "finished"} for t in tickets[:-1]]
        + [{"ticket_id": tickets[-1], "disposition": "left", "reason": "went home"}]}))
    await handle.result()
    return wid


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "v1"))
