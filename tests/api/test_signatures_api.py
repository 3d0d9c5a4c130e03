"""Verifying a signed report over HTTP (R10.2.4): intact, changed, audited with its result."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text
from sqlmodel import Session, select

from domain.enums import Role
from domain.security_tables import AuditRecord
from domain.tables import ReportVersion
from security.signatures import sign_version

ACC = "A2026010100001"


def _signed_report(session: Session, settings) -> None:
    session.add(ReportVersion(accession_number=ACC, version=1, tier="final", status="valid", findings="肝内低密度灶。",
                              impression="考虑囊肿。", author_id="u-senior_radiologist", author_role="senior_radiologist"))
    session.commit()
    sign_version(session, ACC, 1, "u-senior_radiologist", "Senior", "senior_radiologist",
                 datetime(2026, 1, 1, 12, tzinfo=timezone.utc), settings.signature_keys)
    session.commit()


async def test_verify_says_intact_then_changed_and_audits_each_check(api, auth, make_order, session, settings) -> None:
    make_order(ACC)
    _signed_report(session, settings)
    url = f"/api/v1/loops/{ACC}/reports/1/signature"
    ok = await api.get(url, headers=auth(Role.clinician))
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "intact" and ok.json()["signer_id"] == "u-senior_radiologist"
    session.execute(text("UPDATE report_version SET impression = '考虑转移瘤。' WHERE accession_number = :a"), {"a": ACC})
    session.commit()
    changed = await api.get(url, headers=auth(Role.qc_officer))
    assert changed.status_code == 200 and changed.json()["status"] == "content_changed"
    listed = await api.get(f"/api/v1/loops/{ACC}/signatures", headers=auth(Role.auditor))
    assert [c["status"] for c in listed.json()] == ["content_changed"]
    session.expire_all()
    records = session.exec(select(AuditRecord).where(AuditRecord.event_type == "signature_verify")).all()
    assert [(r.role, r.object_id, r.detail.get("signature")) for r in records[:2]] == [
        ("clinician", ACC, "intact"), ("qc_officer", ACC, "content_changed")]
    assert records[2].detail["signatures"] == {"1": "content_changed"}


async def test_refusals_say_why(api, auth, make_order, session, settings) -> None:
    make_order(ACC)
    _signed_report(session, settings)
    missing = await api.get(f"/api/v1/loops/{ACC}/reports/4/signature", headers=auth(Role.radiologist))
    assert missing.status_code == 404 and "no report version 4" in missing.json()["detail"]
    no_order = await api.get("/api/v1/loops/A-NONE/signatures", headers=auth(Role.radiologist))
    assert no_order.status_code == 404
    bad = await api.get(f"/api/v1/loops/{ACC}/reports/0/signature", headers=auth(Role.radiologist))
    assert bad.status_code == 422
    admin = await api.get(f"/api/v1/loops/{ACC}/reports/1/signature", headers=auth(Role.system_admin))
    assert admin.status_code == 403 and "report_signature_verify" in admin.json()["detail"]
