"""Care policies over HTTP (R6.2.2): read the version in force, publish a new one (manager or QC
officer), a stale edit refused with 409, other roles refused, every publish audited as a config change."""
from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from domain.care_policy import SEED_RULES
from domain.security_tables import AuditRecord

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def _elderly_at(age: int) -> dict:
    rules = SEED_RULES.model_dump(mode="json")
    for rule in rules["rules"]:
        if rule["min_age"] is not None:
            rule["min_age"], rule["name"] = age, f"elderly ({age}+)"
    return rules


async def test_publish_then_stale_edit_refused_and_audited(api, auth, session: Session) -> None:
    first = await api.get("/api/v1/care-policy", headers=auth("nurse"))
    assert first.status_code == 200
    assert first.json()["version"] == 1 and first.json()["published_by"] == "system"
    assert first.json()["policy"] == SEED_RULES.model_dump(mode="json")

    r = await api.post("/api/v1/care-policy", headers=auth("manager"),
                       json={"based_on": 1, "note": "elderly from 70 (ward request)", "policy": _elderly_at(70)})
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert (v2["version"], v2["based_on"], v2["published_by"]) == (2, 1, "u-manager")
    assert (await api.get("/api/v1/care-policy", headers=auth("registrar"))).json()["version"] == 2

    stale = await api.post("/api/v1/care-policy", headers=auth("qc_officer"),
                           json={"based_on": 1, "note": "elderly from 65", "policy": _elderly_at(65)})
    assert stale.status_code == 409
    assert "newest is version 2" in stale.json()["detail"]
    versions = (await api.get("/api/v1/care-policy/versions", headers=auth("qc_officer"))).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert (await api.get("/api/v1/care-policy/versions/1", headers=auth("auditor"))).json()["version"] == 1
    assert (await api.get("/api/v1/care-policy/versions/9", headers=auth("auditor"))).status_code == 404

    session.expire_all()
    published = session.exec(select(AuditRecord).where(AuditRecord.event_type == "config_change")
                             .order_by(col(AuditRecord.seq))).all()
    assert [(a.user_id, a.event_id, a.action, a.outcome) for a in published] == [
        ("u-manager", "110100", "U", "success"), ("u-qc_officer", "110100", "U", "failure")]


async def test_only_managers_and_qc_officers_publish(api, auth) -> None:
    body = {"based_on": 1, "note": "try", "policy": _elderly_at(70)}
    for role in ("registrar", "nurse", "technologist", "system_admin", "auditor"):
        r = await api.post("/api/v1/care-policy", headers=auth(role), json=body)
        assert r.status_code == 403, role
    assert (await api.get("/api/v1/care-policy", headers=auth("system_admin"))).status_code == 403


async def test_a_policy_that_would_not_call_emergencies_first_is_refused(api, auth) -> None:
    rules = SEED_RULES.model_dump(mode="json")
    for rule in rules["rules"]:
        if rule["name"] == "emergency first":
            rule["rank"] = 5
    r = await api.post("/api/v1/care-policy", headers=auth("manager"), json={"based_on": 1, "note": "x", "policy": rules})
    assert r.status_code == 422
    assert "emergency (stat) patients must have the lowest rank" in r.text
    r = await api.post("/api/v1/care-policy", headers=auth("manager"), json={
        "based_on": 1, "note": "x", "policy": {"rules": [{"name": "nobody", "rank": 0}]}})
    assert r.status_code == 422 and "states no criterion" in r.text
