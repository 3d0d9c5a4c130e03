"""GET /health: is every part of the center answering? (interfaces.md "Health").

Each component is asked for real (SELECT 1, Temporal health RPC, pollers on the
loop task queue, DICOM C-ECHO, HL7 TCP accept), in parallel, each with a short
timeout, so operators polling after `make run` learn which part is missing.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from api.deps import TemporalConnector, TemporalConnectorDep, declare_public, in_thread
from api.errors import TemporalUnavailable
from core.config import Settings, get_settings
from core.db import get_engine
from integrations.dicom import probe as dicom_probe

router = APIRouter(
    tags=["health"],
    dependencies=[Depends(declare_public("Operators and probes poll it without credentials; it names components, no data."))],
)

CHECK_TIMEOUT_SECONDS = 2.0


class ComponentHealth(BaseModel):
    status: Literal["ok", "down"]
    detail: str = ""
    latency_ms: float


class HealthReport(BaseModel):
    status: Literal["ok", "unavailable"]
    components: dict[str, ComponentHealth]
    failing: list[str] = []


class ComponentDown(Exception):
    """A component answered, but not as a healthy one would."""


def _select_one() -> str:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return "SELECT 1"


async def check_database(_settings: Settings, _connector: TemporalConnector) -> str:
    return await in_thread(_select_one)


async def check_temporal(settings: Settings, connector: TemporalConnector) -> str:
    client = await connector.get()
    if not await client.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS)):
        raise ComponentDown("health check returned not serving")
    return settings.resolved_temporal_address


async def check_worker(settings: Settings, connector: TemporalConnector) -> str:
    try:
        client = await connector.get()
    except TemporalUnavailable:
        raise ComponentDown("cannot tell: Temporal is unreachable") from None
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.temporal_task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS),
    )
    if not resp.pollers:
        raise ComponentDown(f"no worker polls task queue {settings.temporal_task_queue!r}")
    return f"{len(resp.pollers)} poller(s) on {settings.temporal_task_queue!r}"


def _c_echo(settings: Settings) -> str:
    """C-ECHO as the listener's own probe AE (admitted by its allow-list), over TLS when configured."""
    try:
        return dicom_probe.c_echo(settings, CHECK_TIMEOUT_SECONDS)
    except dicom_probe.ListenerDown as err:
        raise ComponentDown(str(err)) from None


async def check_dicom(settings: Settings, _connector: TemporalConnector) -> str:
    return await in_thread(_c_echo, settings)


async def check_hl7(settings: Settings, _connector: TemporalConnector) -> str:
    _reader, writer = await asyncio.open_connection("127.0.0.1", settings.hl7_port)
    writer.close()
    await writer.wait_closed()
    return f"MLLP 127.0.0.1:{settings.hl7_port} accepts"


CHECKS: dict[str, Callable[[Settings, TemporalConnector], Awaitable[str]]] = {
    "database": check_database,
    "temporal": check_temporal,
    "worker": check_worker,
    "dicom": check_dicom,
    "hl7": check_hl7,
}


async def _run(
    check: Callable[[Settings, TemporalConnector], Awaitable[str]], settings: Settings, connector: TemporalConnector
) -> ComponentHealth:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(settings, connector), CHECK_TIMEOUT_SECONDS + 0.5)
        state: Literal["ok", "down"] = "ok"
    except asyncio.TimeoutError:
        detail, state = f"no answer within {CHECK_TIMEOUT_SECONDS:g}s", "down"
    except Exception as err:  # noqa: BLE001 - any failure is the component's status
        detail, state = (str(err) or type(err).__name__), "down"
    return ComponentHealth(status=state, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 1))


async def health_report(connector: TemporalConnector) -> HealthReport:
    settings = get_settings()
    results = await asyncio.gather(*(_run(c, settings, connector) for c in CHECKS.values()))
    components = dict(zip(CHECKS, results))
    failing = [name for name, c in components.items() if c.status != "ok"]
    return HealthReport(status="unavailable" if failing else "ok", components=components, failing=failing)


@router.get(
    "/health",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "At least one component is down"}},
)
async def health(connector: TemporalConnectorDep) -> JSONResponse:
    report = await health_report(connector)
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if not report.failing else 503)
