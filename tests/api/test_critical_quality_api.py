"""Critical-value compliance, outcome and dictionary endpoints (R8.7, R7.1.3 (2))."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest

from core.reference_data import seed_reference_data
from domain.tables import CriticalValue

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def values(session, make_order):
    make_order("A1")
    make_order("A2")
    session.add_all([
        CriticalValue(id="critical-A1-1", accession_number="A1", finding="tension pneumothorax", raised_by="u-senior_radiologist",
                      raised_at=T0, state="closed", first_notified_at=T0 + timedelta(seconds=4), acked_at=T0 + timedelta(seconds=599),
                      ack_channel="ack", ordering_department="respiratory", item_code="tension_pneumothorax"),
        CriticalValue(id="critical-A2-1", accession_number="A2", finding="free air", raised_by="u-radiologist",
                      raised_at=T0 + timedelta(days=8), state="closed", first_notified_at=T0 + timedelta(days=8, seconds=3),
                      acked_at=T0 + timedelta(days=8, seconds=601), ack_channel="ack", ordering_department="emergency"),
    ])
    session.commit()


async def test_metrics_json_csv_svg_and_page(api, auth, values):
    assert (await api.get("/api/v1/critical-values/metrics", headers=auth("clinician"))).status_code == 403
    r = await api.get("/api/v1/critical-values/metrics", headers=auth("qc_officer"))
    assert r.status_code == 200, r.text
    m = r.json()
    assert (m["total"], m["notified_within_10_rate"], m["acked_within_deadline_rate"]) == (2, 1.0, 0.5)
    assert [o["id"] for o in m["out_of_compliance"]] == ["critical-A2-1"]
    assert [g["key"] for g in m["by_department"]] == ["emergency", "respiratory"]
    r = await api.get("/api/v1/critical-values/metrics", params={"from": (T0 + timedelta(days=1)).isoformat()},
                      headers=auth("manager"))
    assert r.json()["total"] == 1
    r = await api.get("/api/v1/critical-values/metrics", params={"format": "csv"}, headers=auth("manager"))
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][0] == "id" and [x[0] for x in rows[1:]] == ["critical-A1-1", "critical-A2-1"]
    r = await api.get("/api/v1/critical-values/metrics/weekly.svg", headers=auth("manager"))
    assert r.headers["content-type"] == "image/svg+xml" and r.text.count("<rect") == 2
    r = await api.get("/api/v1/critical-values/report", headers=auth("manager"))
    assert r.status_code == 200 and "<svg" in r.text and "critical-A2-1" not in r.text and "A2" in r.text


async def test_outcome_feeds_concordance(api, auth, values):
    r = await api.post("/api/v1/critical-values/critical-A1-1/outcome", json={"outcome": "confirmed"}, headers=auth("clinician"))
    assert r.status_code == 403
    r = await api.post("/api/v1/critical-values/critical-A1-1/outcome", json={"outcome": "confirmed", "note": "CT follow-up"},
                       headers=auth("qc_officer"))
    assert r.status_code == 200 and r.json()["outcome"] == "confirmed"
    assert (await api.post("/api/v1/critical-values/nope/outcome", json={"outcome": "confirmed"},
                           headers=auth("qc_officer"))).status_code == 404
    m = (await api.get("/api/v1/critical-values/metrics", headers=auth("qc_officer"))).json()
    assert (m["concordance_recorded"], m["concordance_rate"]) == (1, 1.0)


async def test_dictionary_versions_are_published_not_edited(api, auth, session, users):
    seed_reference_data(session)
    session.commit()
    r = await api.get("/api/v1/critical-dictionary", headers=auth("radiologist"))
    assert r.status_code == 200 and r.json()["version"] == 1
    items = r.json()["items"]
    assert {"tension_pneumothorax", "aortic_dissection", "pulmonary_embolism"} <= {i["code"] for i in items}
    items[0]["deadline_seconds"] = 300
    body = {"based_on": 1, "note": "pneumothorax within 5 minutes", "items": items}
    assert (await api.post("/api/v1/critical-dictionary", json=body, headers=auth("radiologist"))).status_code == 403
    r = await api.post("/api/v1/critical-dictionary", json=body, headers=auth("qc_officer"))
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["created_by"]) == (2, "u-qc_officer")
    stale = await api.post("/api/v1/critical-dictionary", json=body, headers=auth("manager"))
    assert stale.status_code == 409 and "newest is version 2" in stale.json()["detail"]
    dup = {**body, "based_on": 2, "items": items + [items[0]]}
    assert (await api.post("/api/v1/critical-dictionary", json=dup, headers=auth("manager"))).status_code == 422
    no_phone = {**body, "based_on": 2, "items": [{**items[0], "ladder": items[0]["ladder"][:1]}]}
    r = await api.post("/api/v1/critical-dictionary", json=no_phone, headers=auth("manager"))
    assert r.status_code == 422
    versions = (await api.get("/api/v1/critical-dictionary/versions", headers=auth("auditor"))).json()
    assert [v["version"] for v in versions] == [2, 1]
    v1 = (await api.get("/api/v1/critical-dictionary/versions/1", headers=auth("auditor"))).json()
    assert v1["items"][0]["deadline_seconds"] == 600


async def test_raise_checks_role_and_dictionary_before_the_loop(api, auth, session, users):
    seed_reference_data(session)
    session.commit()
    body = {"accession_number": "A1", "finding": "tension pneumothorax", "item_code": "no_such_item"}
    assert (await api.post("/api/v1/critical-values", json=body, headers=auth("clinician"))).status_code == 403
    r = await api.post("/api/v1/critical-values", json=body, headers=auth("technologist"))
    assert r.status_code == 422 and "no_such_item" in r.json()["detail"]


async def test_suggestions_are_negation_aware(api, auth, session, users):
    seed_reference_data(session)
    session.commit()
    r = await api.post("/api/v1/critical-values/suggestions", json={"text": "未见气胸。右侧主动脉夹层。", "modality": "CT"},
                       headers=auth("resident"))
    assert r.status_code == 200 and [x["code"] for x in r.json()] == ["aortic_dissection"]


async def test_department_ladder_setup(api, auth, session, users):
    from domain.tables import Department

    session.add(Department(id="respiratory", name="呼吸内科"))
    session.commit()
    contact = {"rung": "department_head", "name": "王主任", "phone": "8201", "notify_urls": ["json://his-gateway.example/hook?token=s3cret"]}
    assert (await api.put("/api/v1/departments/respiratory/critical-contacts/resp-head", json=contact,
                          headers=auth("clinician"))).status_code == 403
    r = await api.put("/api/v1/departments/respiratory/critical-contacts/resp-head", json=contact, headers=auth("qc_officer"))
    assert r.status_code == 200, r.text
    assert r.json()["contacts"] == [{"id": "resp-head", "rung": "department_head", "name": "王主任", "user_id": None,
                                     "phone": "8201", "channels": ["json://his-gateway.example"]}]
    bad = {"name": "WeCom", "apprise_url": "nonsense"}
    assert (await api.put("/api/v1/departments/respiratory/critical-channels/wecom", json=bad,
                          headers=auth("manager"))).status_code == 422
    ok = {"name": "WeCom group", "apprise_url": "json://wecom.example/hook"}
    r = await api.put("/api/v1/departments/respiratory/critical-channels/wecom", json=ok, headers=auth("manager"))
    assert [c["channel"] for c in r.json()["channels"]] == ["json://wecom.example"]
    assert (await api.get("/api/v1/departments/nope/critical-setup", headers=auth("manager"))).status_code == 404
