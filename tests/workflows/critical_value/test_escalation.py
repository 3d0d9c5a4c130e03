"""Critical values under the time-skipping server: the 10-minute clock, to the second."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowExecutionStatus

from core.db import get_engine
from domain.enums import Role
from domain.loop import CriticalAck, CriticalResult, CriticalStatus, critical_value_workflow_id
from domain.scheduling import as_utc
from domain.tables import CriticalValue, HumanTask, NotificationAttempt
from services import loop_commands
from services.errors import Forbidden, Invalid
from tests.support.loop_driver import LoopDriver, actor
from worker import build_worker

FINDING = "tension pneumothorax"


async def _raise_critical(d: LoopDriver, finding: str = FINDING) -> tuple[str, str]:
    acc = (await d.place()).accession_number
    await d.check_in(acc)
    await d.perform_exam(acc)
    await d.grade(acc, "A")
    await d.report(acc, critical_finding=finding)
    cv = critical_value_workflow_id(acc, 1)
    await _wait_status(d.client, cv, lambda st: True)
    return acc, cv


async def _wait_status(client: Client, cv: str, pred, timeout: float = 15) -> CriticalStatus:
    async def poll() -> CriticalStatus:
        while True:
            try:
                st = await client.get_workflow_handle(cv).query("status", result_type=CriticalStatus)
                if pred(st):
                    return st
            except Exception:  # not started yet
                pass
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


def _attempts(cv: str) -> list[NotificationAttempt]:
    with Session(get_engine()) as s:
        return list(s.exec(select(NotificationAttempt).where(NotificationAttempt.critical_value_id == cv)
                           .order_by(NotificationAttempt.attempted_at)))


async def _wait_attempts(cv: str, n: int, timeout: float = 10) -> list[NotificationAttempt]:
    async def poll() -> list[NotificationAttempt]:
        while len(rows := _attempts(cv)) < n:
            await asyncio.sleep(0.05)
        return rows

    return await asyncio.wait_for(poll(), timeout)


def _ack(read_back: str = f"I read back: {FINDING}, right side") -> CriticalAck:
    return CriticalAck(actor=actor(Role.clinician), clinician_name="孙医生", read_back=read_back)


async def _result(client: Client, cv: str) -> CriticalResult:
    handle = client.get_workflow_handle(cv, result_type=CriticalResult)
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await asyncio.sleep(0.05)
    return await handle.result()


async def test_no_ack_escalates_exactly_at_the_deadline(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await _raise_critical(d)
        first = (await _wait_attempts(cv, 1))[0]
        await ts_env.sleep(timedelta(seconds=598))
        assert (await _wait_status(ts_env.client, cv, lambda st: True)).level == 0
        assert len(_attempts(cv)) == 1
        await ts_env.sleep(timedelta(seconds=3))
        st = await _wait_status(ts_env.client, cv, lambda st: st.level == 1)
        assert st.level_name == "department on-call"
        rows = await _wait_attempts(cv, 2)
        lag = (as_utc(rows[1].attempted_at) - as_utc(first.attempted_at)).total_seconds()
        assert 600 <= lag < 601.5, lag
        assert [r.recipient for r in rows] == ["user:u-clinician", "department_oncall:respiratory"]
        assert all(r.delivered for r in rows)
        assert len(notify_sink.received) >= 2 and "[CRITICAL]" in notify_sink.received[-1]["title"]


async def test_ack_before_the_deadline_stops_the_clock(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await _raise_critical(d)
        await _wait_attempts(cv, 1)
        await ts_env.sleep(timedelta(seconds=599))
        await loop_commands.acknowledge_critical(ts_env.client, cv, _ack())
        result = await _result(ts_env.client, cv)
        assert (result.channel, result.level, result.escalations) == ("ack", 0, 0)
        await ts_env.sleep(timedelta(minutes=30))
        assert len(_attempts(cv)) == 1  # nobody else was paged
        with Session(get_engine()) as s:
            row = s.get(CriticalValue, cv)
            assert row.state == "acknowledged" and row.acked_by == "u-clinician" and FINDING in row.read_back
            ack_after = (as_utc(row.acked_at) - as_utc(row.raised_at)).total_seconds()
            assert 599 <= ack_after < 601


async def test_ack_after_the_deadline_counts_one_escalation(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await _raise_critical(d)
        await _wait_attempts(cv, 1)
        await ts_env.sleep(timedelta(seconds=601))
        await _wait_status(ts_env.client, cv, lambda st: st.level == 1)
        await loop_commands.acknowledge_critical(ts_env.client, cv, _ack())
        result = await _result(ts_env.client, cv)
        assert (result.channel, result.level, result.escalations) == ("ack", 1, 1)


async def test_unanswered_ladder_ends_in_a_recorded_phone_call(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await _raise_critical(d)
        await _wait_attempts(cv, 1)
        await ts_env.sleep(timedelta(seconds=601))
        await _wait_status(ts_env.client, cv, lambda st: st.level == 1)
        await ts_env.sleep(timedelta(seconds=301))
        st = await _wait_status(ts_env.client, cv, lambda st: st.phone_task_id is not None)
        assert st.level == 2
        with pytest.raises(Invalid, match="read-back must name the finding"):
            await d.complete_in(cv, "critical_phone_call", Role.nurse,
                                {"called_person_name": "孙医生", "read_back": "got it"})
        with pytest.raises(Forbidden):
            await d.complete_in(cv, "critical_phone_call", Role.registrar,
                                {"called_person_name": "孙医生", "read_back": FINDING})
        await d.complete_in(cv, "critical_phone_call", Role.nurse,
                            {"called_person_name": "孙医生", "phone_number": "8001", "read_back": f"{FINDING} confirmed"})
        result = await _result(ts_env.client, cv)
        assert (result.channel, result.level, result.escalations, result.acknowledged_by) == ("phone_call", 2, 2, "u-nurse")
        with Session(get_engine()) as s:
            task = s.exec(select(HumanTask).where(HumanTask.workflow_id == cv)).one()
            assert task.state == "done" and task.result["called_person_name"] == "孙医生"
            assert s.get(CriticalValue, cv).ack_channel == "phone_call"


async def test_every_channel_down_goes_straight_to_the_phone(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    notify_sink.fail = True
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await _raise_critical(d)
        st = await _wait_status(ts_env.client, cv, lambda st: st.phone_task_id is not None, timeout=30)
        assert st.level == 0  # no waiting out the 10 minutes on a dead channel
        rows = _attempts(cv)
        assert len(rows) == 3 and not any(r.delivered for r in rows) and all(r.error for r in rows)


async def test_read_back_and_role_are_checked_and_a_second_ack_changes_nothing(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await _raise_critical(d, finding="急性颅内出血")
        with pytest.raises(Invalid, match="read-back must name the finding"):
            await loop_commands.acknowledge_critical(ts_env.client, cv, _ack("收到，脑梗"))
        with pytest.raises(Forbidden):
            await loop_commands.acknowledge_critical(
                ts_env.client, cv, CriticalAck(actor=actor(Role.nurse), clinician_name="x", read_back="急性颅内出血"))
        first = await loop_commands.acknowledge_critical(ts_env.client, cv, _ack("收到：急性颅内出血"))
        second = await loop_commands.acknowledge_critical(ts_env.client, cv, _ack("again 急性颅内出血"))
        assert first.acknowledged and second.acknowledged and second.acked_by == "u-clinician"
        result = await _result(ts_env.client, cv)
        assert result.channel == "ack"
        with Session(get_engine()) as s:
            assert s.get(CriticalValue, cv).read_back == "收到：急性颅内出血"
