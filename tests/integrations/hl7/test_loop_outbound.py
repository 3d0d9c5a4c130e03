"""The exam loop tells the HIS over HL7 (R4.3.1): status updates and ORU^R01, in order, outage-proof."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import Session, select

from core.db import get_engine
from domain.hl7_tables import HL7Message
from tests.support.loop_driver import LoopDriver
from worker import build_worker


def types(his) -> list[str]:
    return [str(m.segment("MSH")[9]) for m in his.messages()]


async def _until(pred, timeout: float = 20) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_statuses_then_the_signed_report_reach_the_his_in_order(ts_env, task_queue, his) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.check_in(acc)
        await d.perform_exam(acc)
        await d.grade(acc, "A")
        await d.report(acc, critical_finding="tension pneumothorax", critical_item_code="tension_pneumothorax")
        await d.wait_step(acc, "published")
        await _until(lambda: any(t.startswith("ORU") for t in types(his)))
        got = types(his)
        oru = his.messages()[got.index(next(t for t in got if t.startswith("ORU")))]
        assert str(oru.segment("OBR")[25]) == "F"
        assert any(str(obx[8]) for obx in oru.segments("OBX"))  # the critical flag travels (OBX-8)

        def all_delivered() -> bool:
            with Session(get_engine()) as s:
                rows = s.exec(select(HL7Message).where(HL7Message.direction == "outbound")).all()
                return bool(rows) and {r.status for r in rows} == {"delivered"}

        await _until(all_delivered)
        assert len(his.received) == len(set(his.received))  # nothing twice
        statuses = [m for m in his.messages() if str(m.segment("MSH")[9]).startswith("ORM")]
        assert len(statuses) >= 5  # accepted, scheduled, arrived, exam completed, reporting, signed...


async def test_a_his_outage_queues_without_blocking_the_loop(ts_env, task_queue, his) -> None:
    his.answer = "AR"  # "cannot take it now": retry later
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.check_in(acc)
        await d.perform_exam(acc)
        await d.grade(acc, "A")
        await d.report(acc)
        await d.wait_step(acc, "published")  # the loop went on while the HIS said AR
        with Session(get_engine()) as s:
            pending = s.exec(select(HL7Message).where(HL7Message.direction == "outbound",
                                                      HL7Message.status != "delivered")).all()
        assert len(pending) >= 5
        his.answer = "AA"
        first_ok = len(his.received)
        for _ in range(40):
            await ts_env.sleep(timedelta(minutes=5))
            with Session(get_engine()) as s:
                if all(r.status == "delivered" for r in s.exec(select(HL7Message).where(HL7Message.direction == "outbound"))):
                    break
        delivered = his.messages()[first_ok:]
        control_ids = [str(m.segment("MSH")[10]) for m in delivered]
        with Session(get_engine()) as s:
            rows = s.exec(select(HL7Message).where(HL7Message.direction == "outbound")).all()
            assert {r.status for r in rows} == {"delivered"}
            assert sorted(control_ids) == sorted({r.control_id for r in rows})  # each once, nothing dropped
        kinds = [str(m.segment("MSH")[9]) for m in delivered]
        assert kinds[-1].startswith("ORU") or kinds[-2].startswith("ORU")  # the report after the statuses before it
