"""Consent records over HTTP (R10.3.2): what, when, by whom, for which purpose; withdrawal keeps the record."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from domain.consent_tables import ConsentRecord
from domain.security_tables import AuditRecord
from domain.tables import Patient
from sqlmodel import select


def _patient(session) -> str:
    session.add(Patient(id="p-c1", name="李四", sex="F", birth_date=date(1980, 1, 2)))
    session.commit()
    return "p-c1"


def _consent(**kw) -> dict:
    body = {"scope": "research", "purpose": "de-identified images for lung nodule research", "method": "written",
            "given_at": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(), "document_ref": "scan-001"}
    return {**body, **kw}


async def test_record_list_withdraw(api, session, auth, make_order) -> None:
    pid = _patient(session)
    make_order("A2026010100031", patient_id=pid)  # ordered from ED, the test clinician's department (need to know)
    r = await api.post(f"/api/v1/patients/{pid}/consents", json=_consent(), headers=auth("registrar"))
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["recorded_by"] == "u-registrar" and rec["recorder_role"] == "registrar" and rec["state"] == "active"
    assert rec["scope"] == "research" and rec["decision"] == "granted" and rec["purpose"].startswith("de-identified")
    await api.post(f"/api/v1/patients/{pid}/consents", json=_consent(scope="ai_analysis", decision="refused",
                   method="verbal_witnessed", witness="护士王"), headers=auth("nurse"))
    listed = (await api.get(f"/api/v1/patients/{pid}/consents", headers=auth("clinician"))).json()
    assert {c["scope"] for c in listed} == {"research", "ai_analysis"}
    only = (await api.get(f"/api/v1/patients/{pid}/consents?scope=research", headers=auth("auditor"))).json()
    assert [c["id"] for c in only] == [rec["id"]]

    w = await api.post(f"/api/v1/consents/{rec['id']}/withdraw", json={"reason": "patient changed their mind"},
                       headers=auth("clinician"))
    assert w.status_code == 200 and w.json()["state"] == "withdrawn" and w.json()["withdrawn_by"] == "u-clinician"
    again = await api.post(f"/api/v1/consents/{rec['id']}/withdraw", json={"reason": "again"}, headers=auth("clinician"))
    assert again.status_code == 409
    session.expire_all()
    assert session.get(ConsentRecord, rec["id"]).purpose.startswith("de-identified")  # kept, only stamped
    audited = session.exec(select(AuditRecord).where(AuditRecord.object_id == pid)).all()
    assert {a.event_type for a in audited} >= {"patient_change", "patient_read"}


async def test_refusals(api, session, auth) -> None:
    pid = _patient(session)
    cases = [
        (_consent(method="verbal_witnessed"), "witness"),
        (_consent(scope="everything"), "scope"),
        (_consent(given_at=(datetime.now(timezone.utc) + timedelta(days=1)).isoformat()), "future"),
        (_consent(valid_until=(datetime.now(timezone.utc) - timedelta(days=2)).isoformat()), "valid_until"),
        (_consent(accession_number="ANOTHER1"), "not this patient"),
    ]
    for body, why in cases:
        r = await api.post(f"/api/v1/patients/{pid}/consents", json=body, headers=auth("registrar"))
        assert r.status_code == 422 and why in r.text, (why, r.text)
    assert (await api.post("/api/v1/patients/p-none/consents", json=_consent(), headers=auth("registrar"))).status_code == 404
    assert (await api.post(f"/api/v1/patients/{pid}/consents", json=_consent(), headers=auth("manager"))).status_code == 403
    assert (await api.get(f"/api/v1/patients/{pid}/consents", headers=auth("system_admin"))).status_code == 403
    assert session.exec(select(ConsentRecord)).all() == []
