"""Staff working their inboxes: find open tasks, complete each one, as fast as it appears.

`Inbox` is the polling loop, shared by the RadLoop run and the bare-Temporal
baseline so both are driven the same way (same poll interval, same concurrency).
`RadLoopStaff` is the RadLoop side: it reads open tasks from the `human_task`
rows (what `GET /api/v1/tasks` reads) and completes them with
`services.loop_commands.complete_task` (what `POST /api/v1/tasks/{id}/complete`
calls), as the demo user of the task's role.
"""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import select
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError

from core.db import session_scope
from domain.enums import Role, TaskState
from domain.loop import Actor, TaskCompletion
from domain.orders import OrderIn
from domain.tables import ExamOrder, HumanTask
from services import loop_commands
from services.errors import Conflict
from services.order_intake import ensure_loop_started, record_order

POLL_SECONDS = 0.05
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class OpenTask:
    task_id: str
    workflow_id: str
    accession: str
    task_type: str


@dataclass
class Inbox:
    """Poll `list_open` and run `complete` once per new task, concurrently.

    When the server is overloaded an update call can time out before the workflow
    took it; it is sent again (as a person would press the button again), up to
    `MAX_ATTEMPTS`, and counted in `timeouts`. Any other failure is kept in `errors`
    (the loop it belongs to would never close, so the benchmark reports it instead
    of waiting forever in silence).
    """

    list_open: Callable[[], Awaitable[list[OpenTask]]]
    complete: Callable[[OpenTask], Awaitable[None]]
    poll_seconds: float = POLL_SECONDS
    seen: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    timeouts: int = 0
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator["Inbox"]:
        """Poll while the block runs; on exit stop polling and let completions in flight finish,
        so the server is not shut down under a half-sent update."""
        poller = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            poller.cancel()
            if self._running:
                await asyncio.wait(set(self._running), timeout=10)

    async def run(self) -> None:
        while True:
            for task in await self.list_open():
                if task.task_id not in self.seen:
                    self.seen.add(task.task_id)
                    job = asyncio.create_task(self._complete(task))
                    self._running.add(job)
                    job.add_done_callback(self._running.discard)
            await asyncio.sleep(self.poll_seconds)

    async def _complete(self, task: OpenTask) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await self.complete(task)
                return
            except WorkflowUpdateRPCTimeoutOrCancelledError as err:
                self.timeouts += 1
                if attempt == MAX_ATTEMPTS:
                    self.errors.append(f"{task.task_id}: {MAX_ATTEMPTS} update timeouts: {err}")
            except Exception as err:  # noqa: BLE001 - reported by the benchmark
                self.errors.append(f"{task.task_id}: {type(err).__name__}: {err}")
                return


# ---- RadLoop -----------------------------------------------------------------------------

def actor(role: Role) -> Actor:
    """The seeded demo user of a role (core.seed: id `u-<role>`)."""
    return Actor(user_id=f"u-{role.value}", role=role, name=role.value)


REPORT = {"findings": "右肺下叶片状实变影", "impression": "右下肺炎", "recommendation": "两周后复查"}

# task type -> (role that completes it, form data); a valid form for each step of the happy path.
FORMS: dict[str, tuple[Role, dict[str, Any]]] = {
    "check_in": (Role.registrar, {"identity_document_type": "id_card", "identity_verified": True}),
    "perform_exam": (Role.technologist, {"method": "CT chest plain", "contrast_used": False}),
    "image_qc": (Role.technologist, {"grade": "A"}),
    "report_draft": (Role.resident, REPORT),
    "report_preliminary": (Role.radiologist, REPORT),
    "report_review": (Role.senior_radiologist, {"action": "sign", **REPORT}),
    "correction_review": (Role.senior_radiologist, {"decision": "accept", "reason": "bench"}),
    "correction_amend": (Role.radiologist, {"kind": "simple", **REPORT}),
    "critical_response": (Role.clinician, {"action_taken": "胸腔闭式引流 / chest drain placed"}),
}


def order_in(priority: str = "routine") -> OrderIn:
    suffix = uuid.uuid4().hex[:10]
    return OrderIn.model_validate({
        "placer_order_number": f"BENCH-{suffix}",
        "placer_system": "BENCH",
        "patient": {"identifiers": [{"system": "MRN", "value": f"B{suffix}"}], "name": "张三", "sex": "M",
                    "birth_date": date(1970, 5, 1).isoformat()},
        "procedure": {"code": "CT-CHEST", "name": "胸部CT平扫 / CT chest", "modality": "CT", "body_part": "CHEST"},
        "priority": priority,
        "ordering": {"clinician_id": "u-clinician", "clinician_name": "孙医生", "department": "respiratory"},
        "clinical": {"history": "咳嗽两周", "diagnosis": "肺炎?", "purpose": "排除肺部感染"},
    })


def _open_rows() -> list[OpenTask]:
    with session_scope() as s:
        rows = s.exec(
            select(HumanTask.id, HumanTask.workflow_id, HumanTask.accession_number, HumanTask.task_type)
            .where(HumanTask.state == TaskState.open.value)
        ).all()
    return [OpenTask(*row) for row in rows]


class RadLoopStaff:
    """Places orders through order intake and completes every task of the loops it placed.

    `critical[accession] = finding` makes the senior radiologist sign that
    accession's report with a critical finding. `hold(accession)` keeps that
    report unsigned until `release(accession)`: the returned event is set once the
    review task is in the inbox, so a benchmark can bring loops up to the signature
    first and sign them later, at moments it chooses.
    """

    def __init__(self, client: Client, task_queue: str, poll_seconds: float = POLL_SECONDS,
                 leave: frozenset[str] = frozenset()) -> None:
        self.client = client
        self.task_queue = task_queue
        self.leave = leave  # task types nobody completes in this run (e.g. the critical value's own)
        self.critical: dict[str, str] = {}
        self._at_review: dict[str, asyncio.Event] = {}
        self._released: dict[str, asyncio.Event] = {}
        self.inbox = Inbox(self._list_open, self._complete, poll_seconds)

    async def place(self, critical_finding: str | None = None) -> ExamOrder:
        """Record the order and start its loop: what `POST /api/v1/orders` does."""
        order = order_in()
        result = await asyncio.to_thread(record_order, session_scope, order)
        if critical_finding:
            self.critical[result.order.accession_number] = critical_finding
        await ensure_loop_started(self.client, result.order, task_queue=self.task_queue)
        return result.order

    def hold(self, accession: str) -> asyncio.Event:
        self._released[accession] = asyncio.Event()
        return self._at_review.setdefault(accession, asyncio.Event())

    def release(self, accession: str) -> None:
        self._released[accession].set()

    async def _list_open(self) -> list[OpenTask]:
        return [t for t in await asyncio.to_thread(_open_rows) if t.task_type not in self.leave]

    async def _complete(self, task: OpenTask) -> None:
        if task.task_type not in FORMS:
            raise LookupError(f"the benchmark has no form for task type {task.task_type!r}")
        role, data = FORMS[task.task_type]
        finding = self.critical.get(task.accession)
        if task.task_type == "report_review" and task.accession in self._released:
            self._at_review[task.accession].set()
            await self._released[task.accession].wait()
        if task.task_type == "report_review" and finding:
            data = {**data, "critical": True, "critical_finding": finding}
        try:
            await loop_commands.complete_task(
                self.client, task.workflow_id, TaskCompletion(task_id=task.task_id, actor=actor(role), data=data))
        except Conflict as err:
            # Only our own earlier attempt (timed out on the client, taken by the loop) completes it.
            if "already completed" not in str(err):
                raise
