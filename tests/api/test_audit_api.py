"""Every request touching patient data leaves an audit record, whatever its outcome, and the
response never waits on the audit store: while it is down records spool and come back later (R10.5)."""
from __future__ import annotations

from pathlib import Path

import httpx
from sqlmodel import Session, col, select

from core.config import get_settings
from api.main import create_app
from core.db import make_engine
from domain.security_tables import AuditRecord
from security.audit import AuditTrail, verify_chain


def _records(session: Session) -> list[AuditRecord]:
    session.expire_all()
    return list(session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all())


async def test_patient_reads_are_audited_with_who_what_and_outcome(api, auth, make_order, session) -> None:
    make_order("A2026010100001")
    assert (await api.get("/api/v1/orders/A2026010100001", headers=auth("clinician"))).status_code == 200
    assert (await api.get("/api/v1/orders/A404", headers=auth("clinician"))).status_code == 404
    assert (await api.get("/api/v1/orders/A2026010100001", headers=auth("system_admin"))).status_code == 403
    assert (await api.get("/api/v1/tasks?claimed=mine", headers=auth("nurse"))).status_code == 200
    ok, missing, refused, query = _records(session)
    assert (ok.username, ok.role, ok.event_type, ok.event_id, ok.action) == (
        "clinician", "clinician", "patient_read", "110110", "R")
    assert (ok.object_type, ok.object_id, ok.outcome, ok.source) == ("accession", "A2026010100001", "success", "127.0.0.1")
    assert ok.detail == {"method": "GET", "route": "/api/v1/orders/{accession}", "status": 200, "query": {},
                         "access": "department"}  # why a clinician may see it (R7.1.5)
    assert (missing.object_id, missing.outcome, missing.detail["status"]) == ("A404", "failure", 404)
    assert (refused.role, refused.outcome, refused.detail["status"]) == ("system_admin", "failure", 403)
    assert (query.event_type, query.event_id, query.detail["query"]) == ("patient_query", "110112", {"claimed": "mine"})
    assert verify_chain(session, get_settings().audit_checkpoint_keys).ok


async def test_unauthenticated_attempts_on_patient_data_are_audited(api, session) -> None:
    assert (await api.get("/api/v1/orders/A1")).status_code == 401
    [record] = _records(session)
    assert (record.user_id, record.outcome, record.detail["status"]) == (None, "failure", 401)


async def test_requests_without_patient_data_leave_no_record(api, auth, session) -> None:
    assert (await api.get("/api/v1/ui-schemas", headers=auth("nurse"))).status_code == 200
    assert _records(session) == []


async def test_audit_store_down_spools_and_replays_nothing_lost(users, auth, make_order, session, tmp_path: Path) -> None:
    make_order("A2026010100001")
    app = create_app()
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test")
    live: AuditTrail = app.state.audit_trail
    dead = make_engine(f"sqlite:///{tmp_path / 'gone' / 'audit.db'}")
    app.state.audit_trail = AuditTrail(lambda: dead, live.spool_dir, get_settings().audit_checkpoint_keys)
    for role in ("clinician", "radiologist", "auditor"):
        r = await api.get("/api/v1/orders/A2026010100001", headers=auth(role))
        assert r.status_code == 200  # the response does not depend on the audit store
    assert _records(session) == [] and [e.role for e in live.spooled()] == ["clinician", "radiologist", "auditor"]
    app.state.audit_trail = live  # the store is back: the next audited request replays the spool first
    assert (await api.get("/api/v1/orders/A2026010100001", headers=auth("manager"))).status_code == 200
    assert [r.role for r in _records(session)] == ["clinician", "radiologist", "auditor", "manager"]
    assert live.spooled() == [] and verify_chain(session, get_settings().audit_checkpoint_keys).ok
    await api.aclose()


async def test_logout_is_audited(api, auth, session) -> None:
    assert (await api.post("/api/v1/auth/logout", headers=auth("nurse"))).status_code == 204
    [record] = _records(session)
    assert (record.event_type, record.event_id, record.username, record.outcome) == ("logout", "110114", "nurse", "success")


async def test_auditors_search_export_and_verify_and_their_reads_are_audited(api, auth, make_order, session) -> None:
    make_order("A2026010100001")
    await api.get("/api/v1/orders/A2026010100001", headers=auth("clinician"))
    await api.get("/api/v1/orders/A2026010100001", headers=auth("radiologist"))
    assert (await api.get("/api/v1/audit/records", headers=auth("security_admin"))).status_code == 403
    page = (await api.get("/api/v1/audit/records", params={"username": "radiologist"}, headers=auth("auditor"))).json()
    assert page["total"] == 1 and page["items"][0]["object_id"] == "A2026010100001"
    csv_text = (await api.get("/api/v1/audit/records", params={"format": "csv", "object_id": "A2026010100001"},
                              headers=auth("auditor"))).text
    assert csv_text.splitlines()[0].startswith("seq,occurred_at,user_id") and len(csv_text.splitlines()) == 3
    verified = (await api.get("/api/v1/audit/verify", headers=auth("auditor"))).json()
    assert verified["ok"] is True and verified["checked"] >= 3
    used = [r for r in _records(session) if r.event_type == "audit_log_used"]
    assert [(r.username, r.event_id, r.outcome) for r in used] == [
        ("security_admin", "110101", "failure"), ("auditor", "110101", "success"),
        ("auditor", "110101", "success"), ("auditor", "110101", "success")]
