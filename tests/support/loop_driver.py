"""Drive loops the way people do: place an order, find the open task, complete it."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

from sqlmodel import Session
from temporalio.client import Client

from core.db import get_engine
from domain.enums import Role
from domain.loop import Actor, LoopStatus, TaskCompletion, TaskOutcome, exam_loop_workflow_id
from domain.orders import OrderIn
from domain.tables import ExamOrder
from services import loop_commands
from services.order_intake import ensure_loop_started, record_order


def actor(role: Role) -> Actor:
    """The demo user of a role (core.seed: id `u-<role>`)."""
    return Actor(user_id=f"u-{role.value}", role=role, name=role.value)


def order_payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "placer_order_number": f"P{uuid.uuid4().hex[:8]}",
        "placer_system": "HIS",
        "patient": {
            "identifiers": [{"system": "MRN", "value": f"MRN{uuid.uuid4().hex[:8]}"}],
            "name": "张三", "sex": "M", "birth_date": date(1970, 5, 1).isoformat(),
        },
        "procedure": {"code": "CT-CHEST", "name": "胸部CT平扫 / CT chest", "modality": "CT", "body_part": "CHEST"},
        "priority": "routine",
        "ordering": {"clinician_id": "u-clinician", "clinician_name": "孙医生", "department": "respiratory"},
        "clinical": {"history": "咳嗽两周", "diagnosis": "肺炎?", "purpose": "排除肺部感染"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def _session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


class LoopDriver:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def place(self, **overrides: Any) -> ExamOrder:
        order = OrderIn.model_validate(order_payload(**overrides))
        result = await asyncio.to_thread(record_order, _session, order)
        await ensure_loop_started(self.client, result.order, task_queue=self.task_queue)
        return result.order

    async def status(self, accession: str) -> LoopStatus:
        return await loop_commands.loop_status(self.client, accession)

    async def wait_step(self, accession: str, step: str, timeout: float = 45) -> LoopStatus:
        async def poll() -> LoopStatus:
            while True:
                st = await self.status(accession)
                if st.step.value == step:
                    return st
                await asyncio.sleep(0.05)

        try:
            return await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            raise AssertionError(f"{accession} never reached {step}: {await self.status(accession)}") from None

    async def wait_task(self, workflow_id: str, task_type: str, timeout: float = 45) -> str:
        handle = self.client.get_workflow_handle(workflow_id)

        async def poll() -> str:
            while True:
                st = await handle.query("status")
                tasks = st["open_tasks"] if isinstance(st, dict) else st.open_tasks
                for t in tasks:
                    t = t if isinstance(t, dict) else t.model_dump()
                    if t["task_type"] == task_type:
                        return t["task_id"]
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(poll(), timeout)

    async def complete(self, acc: str, task_type: str, role: Role, data: dict[str, Any]) -> TaskOutcome:
        return await self.complete_in(exam_loop_workflow_id(acc), task_type, role, data)

    async def complete_in(self, wid: str, task_type: str, role: Role, data: dict[str, Any]) -> TaskOutcome:
        task_id = await self.wait_task(wid, task_type)
        return await loop_commands.complete_task(self.client, wid, TaskCompletion(task_id=task_id, actor=actor(role), data=data))

    # ---- the happy path, step by step ------------------------------------------------
    async def arrived(self, **overrides: Any) -> str:
        """A new order's loop with the patient checked in and waiting: its accession number."""
        acc = (await self.place(**overrides)).accession_number
        await self.check_in(acc)
        await self.wait_step(acc, "arrived")
        return acc

    async def check_in(self, acc: str) -> None:
        await self.complete(acc, "check_in", Role.registrar, {"identity_document_type": "id_card", "identity_verified": True})

    async def perform_exam(self, acc: str, contrast: bool = False) -> None:
        data: dict[str, Any] = {"method": "CT chest plain", "contrast_used": contrast}
        if contrast:
            data |= {"contrast_agent": "iohexol", "contrast_volume_ml": 80}
        await self.complete(acc, "perform_exam", Role.technologist, data)

    async def grade(self, acc: str, grade: str = "A", reason: str | None = None) -> None:
        await self.complete(acc, "image_qc", Role.technologist, {"grade": grade, "reason": reason})

    async def report(self, acc: str, critical_finding: str | None = None, critical_item_code: str | None = None) -> None:
        await self.complete(acc, "report_draft", Role.resident,
                            {"findings": "右肺下叶片状影", "impression": "右下肺炎", "recommendation": "抗感染治疗后复查"})
        await self.complete(acc, "report_preliminary", Role.radiologist,
                            {"findings": "右肺下叶片状实变影", "impression": "右下肺炎", "recommendation": "复查"})
        review: dict[str, Any] = {"action": "sign", "findings": "右肺下叶片状实变影", "impression": "右下肺炎",
                                  "recommendation": "两周后复查"}
        if critical_finding:
            review |= {"critical": True, "critical_finding": critical_finding, "critical_item_code": critical_item_code}
        await self.complete(acc, "report_review", Role.senior_radiologist, review)


async def closed_result(client: Client, workflow_id: str, timeout: float = 45) -> LoopStatus:
    """Wait until the loop is closed, then read its result.

    The time-skipping server's long poll for a result can return an empty page
    ("No completion event found"), so poll the description instead.
    """
    from temporalio.client import WorkflowExecutionStatus

    handle = client.get_workflow_handle(workflow_id, result_type=LoopStatus)

    async def poll() -> LoopStatus:
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await asyncio.sleep(0.05)
        return await handle.result()

    return await asyncio.wait_for(poll(), timeout)


async def settle(quiet_for: float = 0.3, at_most: float = 6.0) -> None:
    """Wait until the loops stop writing (no new timeline event for `quiet_for` seconds, at most
    `at_most`): a worker shut down while a loop is between local activities waits for the workflow
    task's heartbeat deadline (8 s), so fixtures let loops reach their next human step first."""
    from sqlalchemy import func
    from sqlmodel import select

    from domain.tables import DomainEvent

    loop = asyncio.get_running_loop()
    deadline = loop.time() + at_most
    last, since = -1, loop.time()
    while loop.time() < deadline:
        with Session(get_engine()) as s:
            count = s.exec(select(func.count()).select_from(DomainEvent)).one()
        if count != last:
            last, since = count, loop.time()
        elif loop.time() - since >= quiet_for:
            return
        await asyncio.sleep(0.05)
