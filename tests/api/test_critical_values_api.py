"""Critical-value rows and their notification attempts, as the closed loop records them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.tables import CriticalValue, NotificationAttempt

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def critical(session, make_order):
    make_order("A1")
    make_order("A2")
    session.add_all([
        CriticalValue(id="critical-A1-1", accession_number="A1", finding="pneumothorax", raised_by="u-senior_radiologist",
                      raised_at=T0, level=1),
        CriticalValue(id="critical-A2-1", accession_number="A2", finding="free air", raised_by="u-senior_radiologist",
                      raised_at=T0 + timedelta(hours=1), state="acknowledged", acked_by="u-clinician",
                      ack_name="Dr Sun", read_back="free air under the diaphragm", ack_channel="ack"),
        NotificationAttempt(id="n2", accession_number="A1", critical_value_id="critical-A1-1", purpose="critical",
                            recipient="department_oncall", channel="json", attempted_at=T0 + timedelta(minutes=10),
                            delivered=False, error="timeout"),
        NotificationAttempt(id="n1", accession_number="A1", critical_value_id="critical-A1-1", purpose="critical",
                            recipient="c-1", channel="json", attempted_at=T0, delivered=True),
    ])
    session.commit()


async def test_list_newest_first_and_by_accession(api, auth, critical):
    r = await api.get("/api/v1/critical-values", headers=auth("clinician"))
    assert [c["id"] for c in r.json()] == ["critical-A2-1", "critical-A1-1"]
    r = await api.get("/api/v1/critical-values", params={"accession": "A1"}, headers=auth("clinician"))
    assert [c["id"] for c in r.json()] == ["critical-A1-1"]


async def test_detail_with_attempts_in_order(api, auth, critical):
    r = await api.get("/api/v1/critical-values/critical-A1-1", headers=auth("radiologist"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["finding"], body["state"], body["level"]) == ("pneumothorax", "notifying", 1)
    assert [(n["id"], n["delivered"], n["error"]) for n in body["notifications"]] == [("n1", True, None), ("n2", False, "timeout")]


async def test_unknown_is_404_for_read_and_ack(api, auth, critical):
    assert (await api.get("/api/v1/critical-values/critical-X-1", headers=auth("clinician"))).status_code == 404
    ack = {"clinician_name": "Dr Sun", "read_back": "pneumothorax"}
    r = await api.post("/api/v1/critical-values/critical-X-1/ack", json=ack, headers=auth("clinician"))
    assert r.status_code == 404


async def test_ack_needs_a_read_back(api, auth, critical):
    r = await api.post("/api/v1/critical-values/critical-A1-1/ack", json={"clinician_name": "Dr Sun", "read_back": " "},
                       headers=auth("clinician"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "read_back"
