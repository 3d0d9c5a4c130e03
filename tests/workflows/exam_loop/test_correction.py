"""Correction of a signed report (R7.1.4): exactly one valid version, recall recorded."""
from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.enums import Role
from domain.loop import CorrectionRequest, CriticalStatus, critical_value_workflow_id
from domain.tables import ExamOrder, NotificationAttempt, ReportDistribution, ReportVersion
from services import loop_commands
from services.errors import Conflict, Forbidden
from tests.support.loop_driver import LoopDriver, actor
from worker import build_worker


async def _published(d: LoopDriver) -> str:
    acc = (await d.place()).accession_number
    await d.check_in(acc)
    await d.perform_exam(acc)
    await d.grade(acc, "A")
    await d.report(acc)
    await d.wait_step(acc, "published")
    return acc


async def test_accepted_correction_recalls_the_old_version(ts_env, database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await _published(d)
        with Session(get_engine()) as s:
            patient_id = s.get(ExamOrder, acc).patient_id
        with pytest.raises(Forbidden):
            await loop_commands.request_correction(ts_env.client, acc, CorrectionRequest(actor=actor(Role.registrar), reason="x"))
        await loop_commands.request_correction(
            ts_env.client, acc, CorrectionRequest(actor=actor(Role.clinician), reason="laterality wrong: left, not right"))
        with pytest.raises(Conflict, match="already in progress"):
            await loop_commands.request_correction(ts_env.client, acc, CorrectionRequest(actor=actor(Role.clinician), reason="again"))
        await d.complete(acc, "correction_review", Role.senior_radiologist, {"decision": "accept", "reason": "confirmed on images"})
        await d.complete(acc, "correction_amend", Role.radiologist, {
            "kind": "simple", "findings": "左肺下叶片状实变影", "impression": "左下肺炎", "recommendation": "两周后复查"})
        await d.complete(acc, "report_review", Role.senior_radiologist, {
            "action": "sign", "findings": "左肺下叶片状实变影", "impression": "左下肺炎", "recommendation": "两周后复查"})
        st = await d.wait_step(acc, "published")
        assert st.correction_count == 1 and st.valid_report_version == 5
        with Session(get_engine()) as s:
            versions = s.exec(select(ReportVersion).where(ReportVersion.accession_number == acc).order_by(ReportVersion.version)).all()
            assert [v.status for v in versions] == ["working", "working", "recalled", "working", "valid"]
            assert sum(v.status == "valid" for v in versions) == 1
            assert versions[2].recall_reason == "laterality wrong: left, not right" and versions[2].recalled_at is not None
            assert versions[4].tier == "amended" and versions[4].impression == "左下肺炎"
            kinds = [r.kind for r in s.exec(select(ReportDistribution).where(ReportDistribution.accession_number == acc)
                                          .order_by(ReportDistribution.report_version))]
            assert kinds == ["final", "corrected"]

        async def recipients() -> set[str]:
            while True:
                with Session(get_engine()) as s:
                    got = {n.recipient for n in s.exec(select(NotificationAttempt).where(NotificationAttempt.accession_number == acc))}
                if {"user:u-clinician", f"patient:{patient_id}"} <= got:
                    return got
                await asyncio.sleep(0.05)

        await asyncio.wait_for(recipients(), 10)


async def test_rejected_correction_keeps_the_signed_report(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await _published(d)
        await loop_commands.request_correction(ts_env.client, acc, CorrectionRequest(actor=actor(Role.clinician), reason="typo?"))
        await d.complete(acc, "correction_review", Role.senior_radiologist, {"decision": "reject", "reason": "report is correct"})
        st = await d.wait_step(acc, "published")
        assert st.valid_report_version == 3 and st.correction_count == 1
        for _ in range(200):
            if any("report is correct" in b for b in notify_sink.bodies()):
                break
            await asyncio.sleep(0.05)
        assert any("report is correct" in b for b in notify_sink.bodies())


async def test_correction_adding_a_critical_finding_starts_the_critical_loop(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await _published(d)
        assert (await d.status(acc)).critical_value_ids == []
        await loop_commands.request_correction(ts_env.client, acc, CorrectionRequest(actor=actor(Role.radiologist), reason="missed pneumothorax"))
        await d.complete(acc, "correction_review", Role.senior_radiologist, {"decision": "accept", "reason": "agreed"})
        await d.complete(acc, "correction_amend", Role.radiologist, {
            "kind": "reread", "findings": "右侧气胸", "impression": "右侧张力性气胸", "critical": True, "critical_finding": "张力性气胸"})
        await d.complete(acc, "report_review", Role.senior_radiologist, {
            "action": "sign", "findings": "右侧气胸", "impression": "右侧张力性气胸", "critical": True, "critical_finding": "张力性气胸"})
        st = await d.wait_step(acc, "published")
        assert st.critical_value_ids == [critical_value_workflow_id(acc, 1)]
        status = await asyncio.wait_for(_child_status(ts_env.client, st.critical_value_ids[0]), 10)
        assert status.level == 0 and not status.acknowledged


async def _child_status(client, cv: str) -> CriticalStatus:
    while True:
        try:
            return await client.get_workflow_handle(cv).query("status", result_type=CriticalStatus)
        except Exception:
            await asyncio.sleep(0.05)


async def test_review_cannot_be_signed_by_the_preliminary_author(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.check_in(acc)
        await d.perform_exam(acc)
        await d.grade(acc, "A")
        await d.complete(acc, "report_draft", Role.resident, {"findings": "f", "impression": "i"})
        senior = actor(Role.senior_radiologist)
        from domain.loop import TaskCompletion, exam_loop_workflow_id
        wid = exam_loop_workflow_id(acc)
        prelim = await d.wait_task(wid, "report_preliminary")
        await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(task_id=prelim, actor=senior, data={"findings": "f", "impression": "i"}))
        review = await d.wait_task(wid, "report_review")
        with pytest.raises(Forbidden, match="cannot review and sign"):
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(
                task_id=review, actor=senior, data={"action": "sign", "findings": "f", "impression": "i"}))
        # Returned with a comment -> back to a new preliminary task.
        other_senior = senior.model_copy(update={"user_id": "u-senior-2"})
        await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(
            task_id=review, actor=other_senior, data={"action": "return", "comment": "describe the size", "findings": "f", "impression": "i"}))
        prelim2 = await d.wait_task(wid, "report_preliminary")
        assert prelim2 != prelim
