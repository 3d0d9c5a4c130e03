"""Helpers for critical-value tests: raise one, watch its status and attempts, answer it."""
from __future__ import annotations

import asyncio
from typing import Callable

from sqlmodel import Session, select
from temporalio.client import Client, WorkflowExecutionStatus

from core.db import get_engine
from domain.enums import Role
from domain.loop import CriticalAck, CriticalResult, CriticalStatus, critical_value_workflow_id
from domain.tables import NotificationAttempt
from services.errors import Conflict
from tests.support.loop_driver import LoopDriver, actor

FINDING = "tension pneumothorax"


async def raise_by_signing(d: LoopDriver, finding: str = FINDING, item_code: str | None = "tension_pneumothorax") -> tuple[str, str]:
    """A loop whose senior signs a critical finding (no verification needed)."""
    acc = (await d.place()).accession_number
    await d.check_in(acc)
    await d.perform_exam(acc)
    await d.grade(acc, "A")
    await d.report(acc, critical_finding=finding, critical_item_code=item_code)
    cv = critical_value_workflow_id(acc, 1)
    await wait_status(d.client, cv, lambda st: True)
    return acc, cv


async def wait_status(client: Client, cv: str, pred: Callable[[CriticalStatus], bool], timeout: float = 45) -> CriticalStatus:
    async def poll() -> CriticalStatus:
        while True:
            try:
                st = await client.get_workflow_handle(cv).query("status", result_type=CriticalStatus)
                if pred(st):
                    return st
            except Exception:  # noqa: BLE001 - not started yet
                pass
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


def attempts(cv: str) -> list[NotificationAttempt]:
    with Session(get_engine()) as s:
        return list(s.exec(select(NotificationAttempt).where(NotificationAttempt.critical_value_id == cv)
                           .order_by(NotificationAttempt.attempted_at, NotificationAttempt.id)))


async def wait_attempts(cv: str, n: int, timeout: float = 10) -> list[NotificationAttempt]:
    async def poll() -> list[NotificationAttempt]:
        while len(rows := attempts(cv)) < n:
            await asyncio.sleep(0.05)
        return rows

    return await asyncio.wait_for(poll(), timeout)


def ack(read_back: str = f"I read back: {FINDING}, right side") -> CriticalAck:
    return CriticalAck(actor=actor(Role.clinician), clinician_name="孙医生", read_back=read_back)


async def respond(d: LoopDriver, cv: str, timeout: float = 45) -> None:
    """The clinician records the action taken (closes the critical loop)."""
    try:
        await asyncio.wait_for(d.complete_in(cv, "critical_response", Role.clinician,
                                             {"action_taken": "chest drain placed, patient stable"}), timeout)
    except TimeoutError:
        raise Conflict("no open critical_response task") from None


async def result(client: Client, cv: str, timeout: float = 45) -> CriticalResult:
    handle = client.get_workflow_handle(cv, result_type=CriticalResult)

    async def poll() -> CriticalResult:
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await asyncio.sleep(0.05)
        return await handle.result()

    return await asyncio.wait_for(poll(), timeout)
