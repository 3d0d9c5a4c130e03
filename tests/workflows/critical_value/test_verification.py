"""Raised by whoever finds it first, verified by a senior (R7.1.3 (3)); dictionary versions pinned."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.critical_dictionary import SEED_ITEMS
from domain.critical_tables import CriticalDictionaryVersion
from domain.enums import Role
from domain.loop import CriticalRaise, critical_value_workflow_id
from domain.tables import CriticalValue
from services import loop_commands
from services.errors import Conflict, Forbidden
from tests.support.critical import ack, attempts, respond, result, wait_attempts, wait_status
from tests.support.loop_driver import LoopDriver, actor
from worker import build_worker


async def _in_exam(d: LoopDriver) -> str:
    acc = await d.arrived()
    from domain.loop import ExamEvent
    await loop_commands.record_exam_event(d.client, acc, ExamEvent(kind="started", actor=actor(Role.technologist)))
    await d.wait_step(acc, "in_exam")
    return acc


async def _raise(client, acc: str, role: Role = Role.technologist, finding: str = "主动脉夹层", code: str | None = None):
    return await loop_commands.raise_critical(client, acc, CriticalRaise(actor=actor(role), finding=finding, item_code=code))


async def test_technologist_raises_senior_verifies_then_notifies(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await _in_exam(d)
        with pytest.raises(Forbidden):
            await _raise(ts_env.client, acc, role=Role.registrar)
        ack_ = await _raise(ts_env.client, acc)
        cv = critical_value_workflow_id(acc, 1)
        assert ack_.detail == cv
        with pytest.raises(Conflict, match="already being handled"):
            await _raise(ts_env.client, acc)
        st = await wait_status(ts_env.client, cv, lambda st: st.stage == "verifying" and st.open_tasks)
        assert [t.task_type for t in st.open_tasks] == ["critical_verify"]
        with pytest.raises(Conflict, match="still being verified"):
            await loop_commands.acknowledge_critical(ts_env.client, cv, ack("主动脉夹层"))
        assert attempts(cv) == []  # nothing is sent before a senior confirms
        await d.complete_in(cv, "critical_verify", Role.senior_radiologist,
                            {"decision": "confirm", "finding": "主动脉夹层 (Stanford A)"})
        rows = await wait_attempts(cv, 1)
        assert rows[0].recipient == "user:u-clinician"
        with pytest.raises(Exception, match="read-back must name the finding"):
            await loop_commands.acknowledge_critical(ts_env.client, cv, ack("主动脉夹层"))
        await loop_commands.acknowledge_critical(ts_env.client, cv, ack("收到 主动脉夹层 (Stanford A)"))
        await respond(d, cv)
        assert (await result(ts_env.client, cv)).channel == "ack"
        with Session(get_engine()) as s:
            row = s.get(CriticalValue, cv)
            assert row.item_code == "aortic_dissection" and row.verified_by == "u-senior_radiologist"
            assert row.raised_by_role == "technologist" and row.needs_verification and row.finding == "主动脉夹层 (Stanford A)"
        # The exam loop goes on; a second, different finding is a new critical value.
        assert (await d.status(acc)).critical_value_ids == [cv]


async def test_overdue_verification_pages_the_senior_on_duty_and_rejection_closes(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await _in_exam(d)
        await _raise(ts_env.client, acc, role=Role.resident, finding="疑似肺栓塞", code="pulmonary_embolism")
        cv = critical_value_workflow_id(acc, 1)
        await wait_status(ts_env.client, cv, lambda st: st.open_tasks)
        await ts_env.sleep(timedelta(seconds=121))
        rows = await wait_attempts(cv, 1)
        assert rows[0].purpose == "critical_verification" and rows[0].recipient == "senior_radiologist:radiology"
        await d.complete_in(cv, "critical_verify", Role.senior_radiologist,
                            {"decision": "reject", "comment": "flow artefact, no embolus"})
        res = await result(ts_env.client, cv)
        assert res.channel == "not_confirmed"
        with Session(get_engine()) as s:
            assert s.get(CriticalValue, cv).state == "not_confirmed"


async def test_open_critical_value_keeps_its_dictionary_version(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await _in_exam(d)
        await _raise(ts_env.client, acc, role=Role.senior_radiologist, finding="tension pneumothorax", code="tension_pneumothorax")
        cv1 = critical_value_workflow_id(acc, 1)
        await wait_attempts(cv1, 1)
        # The quality office shortens the first rung to 60 s in a new dictionary version.
        items = [i.model_copy(deep=True) for i in SEED_ITEMS]
        for item in items:
            item.ladder[0].wait_seconds = 60
        with Session(get_engine()) as s:
            s.add(CriticalDictionaryVersion(version=2, created_by="u-qc_officer", items=[i.model_dump(mode="json") for i in items]))
            s.commit()
        await _raise(ts_env.client, acc, role=Role.senior_radiologist, finding="free air", code="free_air")
        cv2 = critical_value_workflow_id(acc, 2)
        await wait_attempts(cv2, 1)
        await ts_env.sleep(timedelta(seconds=61))
        await wait_status(ts_env.client, cv2, lambda st: st.level == 1)
        assert (await wait_status(ts_env.client, cv1, lambda st: True)).level == 0  # still on v1's 180 s
        with Session(get_engine()) as s:
            versions = {r.id: r.dictionary_version for r in s.exec(select(CriticalValue).where(CriticalValue.accession_number == acc))}
        assert versions == {cv1: 1, cv2: 2}
