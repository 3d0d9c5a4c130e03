"""Critical values under the time-skipping server: the ladder, to the second (R7.1.3, R8.7).

The seeded dictionary's ladder: ordering clinician at 0, backup clinician at
3 min, department head at 6 min, phone-call task at 8 min.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.enums import Role
from domain.scheduling import as_utc
from domain.tables import CriticalValue, HumanTask
from services import loop_commands
from services.errors import Conflict, Forbidden, Invalid
from tests.support.critical import FINDING, ack, attempts, raise_by_signing, respond, result, wait_attempts, wait_status
from tests.support.loop_driver import LoopDriver
from worker import build_worker


async def test_no_ack_climbs_the_ladder_exactly_on_time(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await raise_by_signing(d)
        first = (await wait_attempts(cv, 1))[0]
        await ts_env.sleep(timedelta(seconds=178))
        assert (await wait_status(ts_env.client, cv, lambda st: True)).level == 0
        assert len(attempts(cv)) == 1
        await ts_env.sleep(timedelta(seconds=3))
        st = await wait_status(ts_env.client, cv, lambda st: st.level == 1)
        assert st.level_name == "backup clinician"
        await ts_env.sleep(timedelta(seconds=180))
        await wait_status(ts_env.client, cv, lambda st: st.level == 2)
        await ts_env.sleep(timedelta(seconds=120))
        st = await wait_status(ts_env.client, cv, lambda st: st.phone_task_id is not None)
        assert st.level == 3
        rows = await wait_attempts(cv, 3)
        lags = [(as_utc(r.attempted_at) - as_utc(first.attempted_at)).total_seconds() for r in rows]
        assert [round(x) for x in lags] == [0, 180, 360], lags
        assert all(abs(x - round(x)) < 1.5 for x in lags)
        assert [r.recipient for r in rows] == [
            "user:u-clinician", "backup_clinician:respiratory", "department_head:respiratory"]
        with Session(get_engine()) as s:
            phone = s.exec(select(HumanTask).where(HumanTask.workflow_id == cv)).one()
            raised = as_utc(s.get(CriticalValue, cv).raised_at)
            assert 479 <= (as_utc(phone.created_at) - raised).total_seconds() < 482  # phone task at 8 min
        assert len(notify_sink.received) >= 3 and "[CRITICAL]" in notify_sink.received[-1]["title"]


@pytest.mark.parametrize("seconds,level,escalations", [(179, 0, 0), (181, 1, 1)])
async def test_ack_stops_the_clock_where_it_stands(ts_env, sqlite_database, task_queue, notify_sink,
                                                   seconds, level, escalations) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await raise_by_signing(d)
        await wait_attempts(cv, 1)
        await ts_env.sleep(timedelta(seconds=seconds))
        await wait_status(ts_env.client, cv, lambda st: st.level == level)
        await loop_commands.acknowledge_critical(ts_env.client, cv, ack())
        await respond(d, cv)
        res = await result(ts_env.client, cv)
        assert (res.channel, res.level, res.escalations) == ("ack", level, escalations)
        await ts_env.sleep(timedelta(minutes=30))
        assert len(attempts(cv)) == level + 1  # nobody further was paged
        with Session(get_engine()) as s:
            row = s.get(CriticalValue, cv)
            assert row.state == "closed" and row.acked_by == "u-clinician" and FINDING in row.read_back
            assert row.item_code == "tension_pneumothorax" and row.dictionary_version == 1
            assert row.action_taken and row.closed_at is not None and row.escalations == escalations
            ack_after = (as_utc(row.acked_at) - as_utc(row.raised_at)).total_seconds()
            assert seconds <= ack_after < seconds + 2


async def test_unanswered_ladder_ends_in_a_recorded_phone_call(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await raise_by_signing(d)
        await wait_attempts(cv, 1)
        await ts_env.sleep(timedelta(seconds=481))
        st = await wait_status(ts_env.client, cv, lambda st: st.phone_task_id is not None)
        assert st.level == 3
        with pytest.raises(Invalid, match="read-back must name the finding"):
            await d.complete_in(cv, "critical_phone_call", Role.nurse, {"called_person_name": "孙医生", "read_back": "got it"})
        with pytest.raises(Forbidden):
            await d.complete_in(cv, "critical_phone_call", Role.registrar, {"called_person_name": "孙医生", "read_back": FINDING})
        await d.complete_in(cv, "critical_phone_call", Role.nurse,
                            {"called_person_name": "孙医生", "phone_number": "8001", "read_back": f"{FINDING} confirmed"})
        await respond(d, cv)
        res = await result(ts_env.client, cv)
        assert (res.channel, res.level, res.escalations, res.acknowledged_by) == ("phone_call", 3, 3, "u-nurse")
        with Session(get_engine()) as s:
            task = s.exec(select(HumanTask).where(HumanTask.workflow_id == cv, HumanTask.task_type == "critical_phone_call")).one()
            assert task.state == "done" and task.result["called_person_name"] == "孙医生"
            assert s.get(CriticalValue, cv).ack_channel == "phone_call"


async def test_every_channel_down_phones_at_once_and_backfills_later(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    notify_sink.fail = True
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await raise_by_signing(d)
        st = await wait_status(ts_env.client, cv, lambda st: st.phone_task_id is not None, timeout=30)
        assert st.level == 0  # no waiting out the clock on a dead channel
        rows = attempts(cv)
        assert len(rows) == 3 and not any(r.delivered for r in rows) and all(r.error for r in rows)
        await d.complete_in(cv, "critical_phone_call", Role.radiologist,
                            {"called_person_name": "孙医生", "read_back": FINDING})
        await respond(d, cv)
        await wait_status(ts_env.client, cv, lambda st: True)
        notify_sink.fail = False  # the outage ends
        await ts_env.sleep(timedelta(minutes=10))
        res = await result(ts_env.client, cv, timeout=30)
        assert res.channel == "phone_call"
        backfill = [r for r in attempts(cv) if r.purpose == "critical_backfill"]
        assert backfill and backfill[-1].delivered
        assert any("back-filled" in m["title"] for m in notify_sink.received)


async def test_read_back_and_role_are_checked_and_a_second_ack_changes_nothing(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await raise_by_signing(d, finding="急性颅内出血", item_code="intracranial_haemorrhage")
        with pytest.raises(Invalid, match="read-back must name the finding"):
            await loop_commands.acknowledge_critical(ts_env.client, cv, ack("收到，脑梗"))
        with pytest.raises(Forbidden):
            from tests.support.loop_driver import actor
            from domain.loop import CriticalAck
            await loop_commands.acknowledge_critical(
                ts_env.client, cv, CriticalAck(actor=actor(Role.nurse), clinician_name="x", read_back="急性颅内出血"))
        first = await loop_commands.acknowledge_critical(ts_env.client, cv, ack("收到：急性颅内出血"))
        second = await loop_commands.acknowledge_critical(ts_env.client, cv, ack("again 急性颅内出血"))
        assert first.acknowledged and second.acknowledged and second.acked_by == "u-clinician"
        await respond(d, cv)
        assert (await result(ts_env.client, cv)).channel == "ack"
        with Session(get_engine()) as s:
            assert s.get(CriticalValue, cv).read_back == "收到：急性颅内出血"


async def test_no_clinical_action_reminds_the_department_head(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        _acc, cv = await raise_by_signing(d)
        await wait_attempts(cv, 1)
        await loop_commands.acknowledge_critical(ts_env.client, cv, ack())
        await d.wait_task(cv, "critical_response")
        await ts_env.sleep(timedelta(seconds=1801))
        rows = await wait_attempts(cv, 2)
        assert rows[-1].purpose == "critical_response_overdue" and rows[-1].recipient == "department_head:respiratory"
        with pytest.raises(Forbidden):
            await d.complete_in(cv, "critical_response", Role.radiologist, {"action_taken": "chest drain"})
        await respond(d, cv)
        assert (await result(ts_env.client, cv)).channel == "ack"
        with pytest.raises(Conflict):
            await respond(d, cv, timeout=1)
