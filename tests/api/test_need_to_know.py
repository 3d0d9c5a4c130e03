"""A clinician sees their own patients' exams; beyond that only by breaking the glass, with a reason,
for a limited time, every read flagged in the audit trail (R7.1.5, R10.3)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from api.main import create_app
from core.config import get_settings
from core.db import make_engine
from domain.security_tables import AuditRecord
from security.audit import AuditTrail
from security.clock import ManualClock

MINE, OTHER = "A2026010100001", "A2026010100002"
REASON = {"reason": "patient collapsed in the ward; prior CT needed for the resuscitation team"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(timezone.utc))


@pytest.fixture
async def client(users, clock, make_order):
    make_order(MINE)  # ordered from ED, the test clinician's department
    make_order(OTHER, ordering_department="oncology", placer_order_number="PO-onc")
    app = create_app(clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def _reads(session, accession: str) -> list[AuditRecord]:
    session.expire_all()
    return list(session.exec(select(AuditRecord).where(AuditRecord.object_id == accession)
                             .order_by(col(AuditRecord.seq))).all())


async def test_own_department_yes_other_department_no(client, auth) -> None:
    assert (await client.get(f"/api/v1/orders/{MINE}", headers=auth("clinician"))).status_code == 200
    refused = await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))
    assert refused.status_code == 403 and "break the glass" in refused.json()["detail"]
    assert (await client.get(f"/api/v1/loops/{OTHER}/reports", headers=auth("clinician"))).status_code == 403
    # imaging staff work on every exam of the center
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("radiologist"))).status_code == 200


async def test_the_ordering_clinician_sees_their_order_from_any_department(client, auth, make_order) -> None:
    make_order("A2026010100003", ordering_department="oncology", ordering_clinician_id="u-clinician",
               placer_order_number="PO-own")
    assert (await client.get("/api/v1/orders/A2026010100003", headers=auth("clinician"))).status_code == 200


async def test_break_glass_opens_one_exam_for_a_while_and_flags_every_read(client, auth, clock, session) -> None:
    glass = await client.post("/api/v1/break-glass", json={"accession_number": OTHER, **REASON}, headers=auth("clinician"))
    assert glass.status_code == 201, glass.text
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))).status_code == 200
    assert (await client.get(f"/api/v1/loops/{OTHER}/reports", headers=auth("clinician"))).status_code == 200
    grant, *reads = _reads(session, OTHER)
    assert (grant.event_type, grant.event_id, grant.detail["reason"]) == ("break_glass", "110113", REASON["reason"])
    assert [(r.username, r.detail.get("access")) for r in reads] == [("clinician", "break_glass")] * 2
    clock.advance(timedelta(hours=4, minutes=1))
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))).status_code == 403


async def test_break_glass_needs_a_reason_and_is_for_clinicians(client, auth) -> None:
    short = await client.post("/api/v1/break-glass", json={"accession_number": OTHER, "reason": "need"},
                              headers=auth("clinician"))
    assert short.status_code == 422
    assert (await client.post("/api/v1/break-glass", json={"accession_number": OTHER, **REASON},
                              headers=auth("registrar"))).status_code == 403
    assert (await client.post("/api/v1/break-glass", json={"accession_number": "A404", **REASON},
                              headers=auth("clinician"))).status_code == 404


async def test_no_break_glass_while_it_cannot_be_recorded(client, auth, session, tmp_path: Path) -> None:
    live: AuditTrail = client.app.state.audit_trail
    dead = make_engine(f"sqlite:///{tmp_path / 'gone' / 'audit.db'}")
    client.app.state.audit_trail = AuditTrail(lambda: dead, live.spool_dir, get_settings().audit_checkpoint_keys)
    r = await client.post("/api/v1/break-glass", json={"accession_number": OTHER, **REASON}, headers=auth("clinician"))
    assert r.status_code == 503
    client.app.state.audit_trail = live  # back up: the spooled attempt is replayed, and still grants nothing
    assert (await client.get(f"/api/v1/orders/{OTHER}", headers=auth("clinician"))).status_code == 403
    attempt = _reads(session, OTHER)[0]
    assert (attempt.event_type, attempt.outcome, attempt.detail["refused"]) == ("break_glass", "failure", "audit store down")
