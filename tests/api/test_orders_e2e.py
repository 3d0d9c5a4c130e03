"""The API in front of real loops: Temporal dev server + the RadLoop worker + the app on ASGI.

Nothing is replaced: orders start real ExamLoop workflows, the worker's
activities write the rows the inbox reads, completions are validated updates,
and notifications travel through apprise to the API's own dev sink (served on
a real socket). Every port and task queue is random.
"""
from __future__ import annotations

import asyncio
import base64
import json
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
import random
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from core import config, db
from domain.tables import AccessionCounter
from tests.support.loop_driver import LoopDriver, order_payload
from worker import build_worker

T = TypeVar("T")
CHECK_IN = {"identity_document_type": "id_card", "identity_verified": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{role}"}


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 20) -> T:
    """Poll until `probe` returns something truthy (loops advance asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def sink_server(sqlite_database: str) -> Iterator[str]:
    """A second app instance on a real socket: the dev notification sink apprise posts to."""
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        thread.join(0.02)
    yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def _fresh_accession_range() -> None:
    """Each test has a new database but shares the dev server: start today's counter at random,
    so this test's accession numbers (hence workflow IDs) are not an earlier test's."""
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    with db.session_scope() as s:
        s.merge(AccessionCounter(day=day, last=random.randrange(10_000, 99_000)))


@dataclass
class Center:
    api: httpx.AsyncClient
    client: Client
    driver: LoopDriver
    settings: config.Settings

    async def place(self, **overrides: Any) -> dict[str, Any]:
        r = await self.api.post("/api/v1/orders", json=order_payload(**overrides), headers=_auth("his_system"))
        assert r.status_code == 201, r.text
        return r.json()

    async def step(self, accession: str) -> str:
        r = await self.api.get(f"/api/v1/loops/{accession}", headers=_auth("clinician"))
        assert r.status_code == 200, r.text
        return r.json()["step"]

    async def reach(self, accession: str, step: str) -> None:
        async def probe() -> bool:
            return await self.step(accession) == step
        await eventually(probe, f"{accession} at step {step}")

    async def inbox_task(self, role: str, accession: str, task_type: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            r = await self.api.get("/api/v1/tasks", params={"task_type": task_type}, headers=_auth(role))
            assert r.status_code == 200, r.text
            return next((t for t in r.json()["items"] if t["accession_number"] == accession), None)
        return await eventually(probe, f"{task_type} of {accession} in the {role} inbox")


@pytest.fixture
async def center(
    sqlite_database: str, dev_env: WorkflowEnvironment, task_queue: str, sink_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Center]:
    monkeypatch.setenv("RADLOOP_TEMPORAL_TASK_QUEUE", task_queue)
    monkeypatch.setenv("RADLOOP_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("RADLOOP_NOTIFY_DEFAULT_URL", f"json://{sink_server}/api/v1/dev/notifications")
    monkeypatch.setenv("RADLOOP_DICOM_PORT", str(free_port()))
    monkeypatch.setenv("RADLOOP_HL7_PORT", str(free_port()))
    config.reset_settings_cache()
    db.reset_engine_cache()
    _fresh_accession_range()
    app = create_app(temporal_client=dev_env.client)
    async with build_worker(dev_env.client, task_queue):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test") as api:
            yield Center(api, dev_env.client, LoopDriver(dev_env.client, task_queue), config.get_settings())


async def test_order_to_check_in_through_the_api(center: Center):
    api = center.api
    body = order_payload()
    first = await api.post("/api/v1/orders", json=body, headers=_auth("his_system"))
    assert first.status_code == 201, first.text
    order = first.json()
    acc = order["accession_number"]
    assert order["workflow_id"] == f"exam-loop-{acc}"

    again = await api.post("/api/v1/orders", json=body, headers=_auth("his_system"))
    assert again.status_code == 200
    assert again.json()["accession_number"] == acc and again.json()["workflow_id"] == order["workflow_id"]

    got = await api.get(f"/api/v1/orders/{acc}", headers=_auth("clinician"))
    assert got.status_code == 200 and got.json()["placer_order_number"] == body["placer_order_number"]

    task = await center.inbox_task("registrar", acc, "check_in")
    assert task["state"] == "open" and task["overdue"] is False
    assert (await api.get(f"/api/v1/orders/{acc}", headers=_auth("clinician"))).json()["step"] == "scheduled"
    url = f"/api/v1/tasks/{task['id']}/complete"

    wrong = await api.post(url, json={"data": CHECK_IN}, headers=_auth("technologist"))
    assert wrong.status_code == 403
    invalid = await api.post(url, json={"data": {"identity_document_type": "id_card"}}, headers=_auth("registrar"))
    assert invalid.status_code == 422

    done = await api.post(url, json={"data": CHECK_IN}, headers=_auth("registrar"))
    assert done.status_code == 200, done.text
    assert done.json()["task_id"] == task["id"] and done.json()["accepted"] is True

    twice = await api.post(url, json={"data": CHECK_IN}, headers=_auth("registrar"))
    assert twice.status_code == 409, twice.text

    await center.reach(acc, "arrived")
    perform = await center.inbox_task("technologist", acc, "perform_exam")
    assert perform["context"]["attempt"] == 1

    started = await api.post(f"/api/v1/loops/{acc}/exam-events", json={"kind": "started"}, headers=_auth("technologist"))
    assert started.status_code == 200 and started.json()["step"] == "in_exam"
    restart = await api.post(f"/api/v1/loops/{acc}/exam-events", json={"kind": "started"}, headers=_auth("technologist"))
    assert restart.status_code == 409 and "cannot start the exam" in restart.json()["detail"]
    too_late = await api.post(f"/api/v1/loops/{acc}/cancel", json={"reason": "patient left"}, headers=_auth("nurse"))
    assert too_late.status_code == 409

    timeline = (await api.get(f"/api/v1/loops/{acc}/timeline", headers=_auth("clinician"))).json()
    assert timeline["temporal_available"] is True
    entries = timeline["entries"]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    whats = [(e["source"], e["what"], e["outcome"]) for e in entries]
    assert whats[0] == ("temporal", "workflow ExamLoop started", "")
    assert ("temporal", "update complete_task", "completed") in whats
    assert ("temporal", "update record_exam_event", "completed") in whats
    assert any(src == "temporal" and w == "activity run_order_qc" and o == "completed" for src, w, o in whats)
    domain = [e for e in entries if e["source"] == "domain"]
    assert any(e["what"] == "task_done" and e["who"] == "u-registrar" for e in domain)


async def test_unknown_accession_is_404_everywhere(center: Center):
    api = center.api
    assert (await api.get("/api/v1/orders/A19000101999", headers=_auth("clinician"))).status_code == 404
    assert (await api.get("/api/v1/loops/A19000101999", headers=_auth("clinician"))).status_code == 404
    r = await api.post("/api/v1/loops/A19000101999/cancel", json={"reason": "x"}, headers=_auth("registrar"))
    assert r.status_code == 404 and "A19000101999" in r.json()["detail"]


async def test_cancel_notifies_the_orderer_through_the_dev_sink(center: Center):
    acc = (await center.place())["accession_number"]
    await center.reach(acc, "scheduled")
    r = await center.api.post(f"/api/v1/loops/{acc}/cancel", json={"reason": "patient declined"}, headers=_auth("clinician"))
    assert r.status_code == 200, r.text
    await center.reach(acc, "cancelled")

    async def notice() -> dict[str, Any] | None:
        # The patient's booking receipt for the same accession is in the sink too.
        listed = (await center.api.get("/api/v1/dev/notifications")).json()
        return next((n for n in listed if acc in n["title"] and n["title"].startswith("Order cancelled")), None)

    got = await eventually(notice, "the cancellation notice in the dev sink")
    assert "patient declined" in got["message"]
    order = (await center.api.get(f"/api/v1/orders/{acc}", headers=_auth("his_system"))).json()
    assert (order["status"], order["step"]) == ("cancelled", "cancelled")


async def test_critical_value_acknowledged_with_read_back(center: Center):
    acc = (await center.place())["accession_number"]
    drv = center.driver
    await drv.check_in(acc)
    await drv.perform_exam(acc)
    await drv.grade(acc)
    await drv.report(acc, critical_finding="pneumothorax")

    async def raised() -> list[dict[str, Any]]:
        r = await center.api.get("/api/v1/critical-values", params={"accession": acc}, headers=_auth("clinician"))
        return r.json()

    [cv] = await eventually(raised, "the critical value row")
    path = f"/api/v1/critical-values/{cv['id']}/ack"
    ack = {"clinician_name": "孙医生", "read_back": "pneumothorax"}
    assert (await center.api.post(path, json=ack, headers=_auth("radiologist"))).status_code == 403
    bad = await center.api.post(path, json={**ack, "read_back": "all fine"}, headers=_auth("clinician"))
    assert bad.status_code == 422 and "read-back must name the finding" in bad.json()["detail"]
    ok = await center.api.post(path, json=ack, headers=_auth("clinician"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["acknowledged"] is True and ok.json()["acked_by"] == "u-clinician"

    reports = (await center.api.get(f"/api/v1/loops/{acc}/reports", headers=_auth("clinician"))).json()
    assert [v["tier"] for v in reports] == ["draft", "preliminary", "final"]
    assert reports[-1]["status"] == "valid" and reports[-1]["critical"] is True
    diff = (await center.api.get(f"/api/v1/loops/{acc}/reports/diff", params={"from": 1, "to": 3},
                                 headers=_auth("clinician"))).json()
    assert {f["field"]: f["changed"] for f in diff["fields"]}["findings"] is True

    timeline = (await center.api.get(f"/api/v1/loops/{acc}/timeline", headers=_auth("clinician"))).json()
    child = [e for e in timeline["entries"] if e["workflow_id"] == cv["id"]]
    assert child and child[0]["what"] == "workflow CriticalValue started"
    assert any(e["what"] == "update acknowledge" and e["outcome"] == "completed" for e in child)


@pytest.fixture
def dicom_and_hl7(center: Center) -> Iterator[None]:
    """A real C-ECHO responder and a TCP listener on the ports the settings name."""
    ae = AE(ae_title=center.settings.ae_title)
    ae.add_supported_context(Verification)
    scp = ae.start_server(("127.0.0.1", center.settings.dicom_port), block=False,
                          evt_handlers=[(evt.EVT_C_ECHO, lambda event: 0x0000)])
    hl7 = socket.create_server(("127.0.0.1", center.settings.hl7_port))
    try:
        yield
    finally:
        hl7.close()
        scp.shutdown()


async def test_health_is_200_when_everything_answers(center: Center, dicom_and_hl7: None):
    async def healthy() -> httpx.Response | None:
        r = await center.api.get("/health")
        # A worker that has just started shows up once its first poll reaches the server.
        assert r.status_code == 200 or r.json()["failing"] == ["worker"], r.text
        return r if r.status_code == 200 else None

    body = (await eventually(healthy, "health 200")).json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["components"]) == {"database", "temporal", "worker", "dicom", "hl7"}
    assert "C-ECHO" in body["components"]["dicom"]["detail"]


def _start_input(show_json: str) -> tuple[bytes, bytes]:
    """(encoding, data) of the loop's input payload in `temporal workflow show -o json` output."""
    [payload] = json.loads(show_json)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    return base64.b64decode(payload["metadata"]["encoding"]), base64.b64decode(payload["data"])


async def test_temporal_cli_reads_history_in_clear_through_the_codec_endpoint(center: Center, sink_server: str):
    """The real `temporal` CLI, pointed at the API's codec server, shows the encrypted loop input in clear."""
    acc = (await center.place())["accession_number"]
    await center.reach(acc, "scheduled")
    cli = [
        str(Path(sys.executable).parent / "temporal"), "workflow", "show", "-w", f"exam-loop-{acc}",
        "--address", center.client.service_client.config.target_host, "-o", "json",
        "--codec-endpoint", f"http://{sink_server}/api/v1/codec",
    ]

    async def run(*extra: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(*cli, *extra, stdout=PIPE, stderr=PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode or 0, out.decode() + err.decode()

    code, out = await run("--codec-auth", "Bearer dev-auditor")
    assert code == 0, out
    encoding, data = _start_input(out)
    assert encoding == b"json/plain"
    assert json.loads(data)["accession_number"] == acc

    # Refused by the codec server, the CLI retries until its deadline, then gives up.
    code, out = await run("--codec-auth", "Bearer dev-clinician", "--command-timeout", "3s")
    assert code != 0 and "accession_number" not in out, "a clinician may not decrypt histories"
