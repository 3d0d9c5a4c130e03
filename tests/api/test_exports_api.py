"""Bulk export over HTTP (R10.3.4): request, approval by someone else, download while the link lives.
An export without approval is refused (403) and leaves an audit record with the reason."""
from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, col, select

from api.main import create_app
from core import db
from domain.export_tables import DataExport
from domain.security_tables import AuditRecord
from domain.tables import HumanTask
from security.clock import ManualClock, aware
from tests.support.export_data import NAME, seed_exam
from worker import build_worker

WAIT = 60.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def live(ts_env, settings, users, clock) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a time-skipping Temporal server with a RadLoop worker on the settings' task queue."""
    app = create_app(temporal_client=ts_env.client, clock=clock)
    async with build_worker(ts_env.client, settings.temporal_task_queue):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test") as client:
            yield client


def _audit(export_id: str) -> list[AuditRecord]:
    with Session(db.get_engine()) as s:
        return list(s.exec(select(AuditRecord).where(AuditRecord.object_id == export_id).order_by(col(AuditRecord.seq))).all())


async def _state(api: httpx.AsyncClient, export_id: str, state: str, auth) -> dict:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        body = (await api.get(f"/api/v1/exports/{export_id}", headers=auth("clinician"))).json()
        if body.get("state") == state:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"export {export_id} never reached {state}: {body}")
        await asyncio.sleep(0.1)


async def _task_open(export_id: str) -> None:
    """The approval task is opened by the workflow's first steps; decisions wait for it."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        with Session(db.get_engine()) as s:
            if s.exec(select(HumanTask).where(HumanTask.workflow_id == f"export-{export_id}")).first():
                return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no approval task for {export_id}")
        await asyncio.sleep(0.1)


def _body(*accessions: str, **kw) -> dict:
    return {"purpose": "quality review of chest CT reports", "use": "quality", "accession_numbers": list(accessions), **kw}


async def test_request_approve_download_expire(live, session, settings, auth, clock, ts_env) -> None:
    api = live
    exam = seed_exam(session, settings.data_dir, 1)
    r = await api.post("/api/v1/exports", json=_body(exam.accession, request_key="k1"), headers=auth("clinician"))
    assert r.status_code == 201, r.text
    export = r.json()
    eid = export["id"]
    assert export["state"] == "requested" and export["download_url"] is None
    again = await api.post("/api/v1/exports", json=_body(exam.accession, request_key="k1"), headers=auth("clinician"))
    assert again.status_code == 200 and again.json()["id"] == eid

    # Not approved yet: refused, and the refusal is in the audit trail with its reason.
    early = await api.get(f"/api/v1/exports/{eid}/download", headers=auth("clinician"))
    assert early.status_code == 403 and "not approved" in early.json()["detail"]
    refused = [a for a in _audit(eid) if a.event_type == "export_download_refused"]
    assert len(refused) == 1 and refused[0].outcome == "failure" and refused[0].user_id == "u-clinician"
    assert "not approved" in refused[0].detail["reason"]

    await _task_open(eid)
    # Only a manager decides; a bad form is refused before it reaches the workflow.
    assert (await api.post(f"/api/v1/exports/{eid}/decision", json={"decision": "approve", "reason": "ok"},
                           headers=auth("clinician"))).status_code == 403
    assert (await api.post(f"/api/v1/exports/{eid}/decision", json={"decision": "yes"},
                           headers=auth("manager"))).status_code == 422
    ok = await api.post(f"/api/v1/exports/{eid}/decision", json={"decision": "approve", "reason": "QA programme"},
                        headers=auth("manager"))
    assert ok.status_code == 200, ok.text
    ready = await _state(api, eid, "ready", auth)
    assert ready["approver_id"] == "u-manager" and ready["download_url"] == f"/api/v1/exports/{eid}/download"
    again = await api.post(f"/api/v1/exports/{eid}/decision", json={"decision": "approve", "reason": "twice"},
                           headers=auth("manager"))
    assert again.status_code == 409

    # Someone else with download rights may not take it.
    other = await api.get(f"/api/v1/exports/{eid}/download", headers=auth("radiologist"))
    assert other.status_code == 403 and "someone else" in other.json()["detail"]
    got = await api.get(f"/api/v1/exports/{eid}/download", headers=auth("clinician"))
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert hashlib.sha256(got.content).hexdigest() == got.headers["x-content-sha256"]
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert NAME.encode() not in b"".join(z.read(n) for n in z.namelist())
    row = session.get(DataExport, eid)
    session.refresh(row)
    assert row.download_count == 1
    kinds = [a.event_type for a in _audit(eid)]
    assert {"export_requested", "export_approved", "export_created", "export_downloaded"} <= set(kinds)

    # Past the window by the API's clock the link is gone even before the workflow's timer fires ...
    clock.advance(aware(row.expires_at) - clock.now() + timedelta(seconds=1))
    late = await api.get(f"/api/v1/exports/{eid}/download", headers=auth("clinician"))
    assert late.status_code == 410
    # ... and when it fires, the file is deleted.
    await ts_env.sleep(timedelta(hours=24, seconds=1))
    await _state(api, eid, "expired", auth)
    assert not (settings.data_dir / "exports" / f"{eid}.zip").exists()
    kinds = [a.event_type for a in _audit(eid) if a.event_type not in ("export_read", "export_request", "export")]
    assert kinds[-1] == "export_expired" and kinds.count("export_download_refused") == 3


async def test_requester_cannot_approve_their_own_export(live, session, settings, auth) -> None:
    exam = seed_exam(session, settings.data_dir, 2, images=0)
    r = await live.post("/api/v1/exports", json=_body(exam.accession), headers=auth("manager"))
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    await _task_open(eid)
    own = await live.post(f"/api/v1/exports/{eid}/decision", json={"decision": "approve", "reason": "mine"},
                          headers=auth("manager"))
    assert own.status_code == 403 and "other than its requester" in own.json()["detail"]
    assert session.get(DataExport, eid).state == "requested"


async def test_bad_requests_are_refused_with_reasons(api, session, settings, auth, make_order) -> None:
    make_order("AOUT0001", ordering_department="ICU", ordering_clinician_id="u-someone")
    r = await api.post("/api/v1/exports", json=_body("NOPE1"), headers=auth("clinician"))
    assert r.status_code == 422 and "NOPE1" in r.json()["detail"]
    r = await api.post("/api/v1/exports", json=_body("AOUT0001"), headers=auth("clinician"))
    assert r.status_code == 403 and "AOUT0001" in r.json()["detail"]
    r = await api.post("/api/v1/exports", json=_body("AOUT0001"), headers=auth("registrar"))
    assert r.status_code == 403
    r = await api.post("/api/v1/exports", json={**_body("AOUT0001"), "purpose": "short"}, headers=auth("manager"))
    assert r.status_code == 422
    make_order("AMINE001")  # the clinician's own department: allowed, but Temporal is down
    r = await api.post("/api/v1/exports", json=_body("AMINE001"), headers=auth("clinician"))
    assert r.status_code == 503
    assert session.exec(select(DataExport)).all() == []  # nothing half-made: the client simply retries
    missing = await api.get("/api/v1/exports/EXP-NONE/download", headers=auth("clinician"))
    assert missing.status_code == 404
    assert [a.event_type for a in _audit("EXP-NONE")].count("export_download_refused") == 1
