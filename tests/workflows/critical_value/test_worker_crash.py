"""A worker killed between notification and acknowledgment: nothing sent twice, nothing lost."""
from __future__ import annotations

import asyncio
import signal

from sqlmodel import Session

from core.db import get_engine
from domain.tables import CriticalValue
from services import loop_commands
from tests.support.critical import ack, attempts, raise_by_signing, respond, result, wait_attempts
from tests.support.loop_driver import LoopDriver
from tests.support.worker_process import start_worker


async def test_killed_worker_between_notice_and_ack(dev_env, sqlite_database, task_queue, notify_sink) -> None:
    worker = start_worker(dev_env, task_queue)
    try:
        d = LoopDriver(dev_env.client, task_queue)
        _acc, cv = await raise_by_signing(d)
        await wait_attempts(cv, 1, timeout=30)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        acked = asyncio.create_task(loop_commands.acknowledge_critical(dev_env.client, cv, ack()))
        await asyncio.sleep(1.0)
        assert not acked.done()  # no worker: the clinician's ack waits, it is not lost
        worker = start_worker(dev_env, task_queue)
        status = await asyncio.wait_for(acked, 60)
        assert status.acknowledged
        await respond(d, cv, timeout=60)
        res = await result(dev_env.client, cv, timeout=60)
        assert (res.channel, res.level) == ("ack", 0)
        critical_notices = [m for m in notify_sink.received if "[CRITICAL]" in m["title"]]
        assert len(critical_notices) == 1 and len(attempts(cv)) == 1
        with Session(get_engine()) as s:
            row = s.get(CriticalValue, cv)
            assert row.state == "closed" and row.acked_by == "u-clinician" and row.action_taken
    finally:
        worker.kill()
        worker.wait(timeout=10)
