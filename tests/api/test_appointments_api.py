"""Appointments over HTTP: quote with reasons, book/change/cancel recorded with the channel,
channel rights by role, refusals as 409 with reasons, rules and calendars by managers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.tables import Room

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def rooms(session):
    session.add_all([Room(id="CT1", name="CT 1", campus="Main", modalities="CT", station_ae_title="CT1"),
                     Room(id="US1", name="US 1", campus="East", modalities="US", station_ae_title="US1")])
    session.commit()


async def test_quote_book_change_cancel_through_one_api(api, auth, rooms, make_order):
    make_order("A1")  # CT-CHEST
    q = await api.post("/api/v1/appointments/quote", json={"accession_number": "A1", "channel": "centre", "limit": 5},
                       headers=auth("registrar"))
    assert q.status_code == 200, q.text
    free = [s for s in q.json()["slots"] if not s["refusals"]]
    assert free and all(s["room_id"] == "CT1" for s in q.json()["slots"])
    r = await api.post("/api/v1/appointments", json={"accession_numbers": ["A1"], "channel": "centre",
                                                     "segment_ids": {"A1": free[0]["segment_id"]}},
                       headers=auth("registrar"))
    assert r.status_code == 201, r.text
    [b] = r.json()
    assert b["channel"] == "centre"
    assert datetime.fromisoformat(b["start_at"]) == datetime.fromisoformat(free[0]["start"])
    rc = await api.get(f"/api/v1/appointments/plans/{b['plan_id']}/receipt", headers=auth("registrar"))
    assert rc.status_code == 200 and "CT 1" in rc.json()["text"] and "Main" in rc.json()["text"]
    moved = await api.post(f"/api/v1/appointments/{b['id']}/change",
                           json={"channel": "nurse_station", "not_before": (datetime.now(timezone.utc)
                                                                           + timedelta(days=3)).isoformat()},
                           headers=auth("nurse"))
    assert moved.status_code == 200, moved.text
    assert moved.json()["channel"] == "nurse_station" and moved.json()["id"] != b["id"]
    c = await api.post(f"/api/v1/appointments/{moved.json()['id']}/cancel", json={"channel": "doctor_station"},
                       headers=auth("clinician"))
    assert c.status_code == 200 and c.json()["state"] == "cancelled"
    listed = await api.get("/api/v1/appointments", params={"accession_number": "A1"}, headers=auth("registrar"))
    assert [x["state"] for x in listed.json()] == ["changed", "cancelled"]


async def test_a_refusal_is_409_with_reasons(api, auth, rooms, make_order):
    make_order("A1", procedure_code="CT-ABD-C")
    r = await api.post("/api/v1/appointments", json={"accession_numbers": ["A1"], "channel": "centre"},
                       headers=auth("registrar"))
    assert r.status_code == 409
    assert r.json()["reasons"][0]["code"] == "egfr_missing" and "eGFR" in r.json()["detail"]


async def test_a_role_speaks_only_for_its_channels(api, auth, rooms, make_order):
    make_order("A1")
    r = await api.post("/api/v1/appointments", json={"accession_numbers": ["A1"], "channel": "online"},
                       headers=auth("registrar"))
    assert r.status_code == 403 and "online" in r.json()["detail"]
    r = await api.post("/api/v1/appointments", json={"accession_numbers": ["A1"], "channel": "centre"},
                       headers=auth("radiologist"))
    assert r.status_code == 403


async def test_rules_are_published_as_versions_by_managers(api, auth, rooms):
    current = (await api.get("/api/v1/appointments/rules", headers=auth("registrar"))).json()
    assert current["version"] == 1
    current["campus_travel_minutes"] = 45
    denied = await api.post("/api/v1/appointments/rules", json=current, headers=auth("registrar"))
    assert denied.status_code == 403
    r = await api.post("/api/v1/appointments/rules", json=current, params={"note": "new shuttle timetable"},
                       headers=auth("manager"))
    assert r.status_code == 201 and r.json()["version"] == 2
    assert (await api.get("/api/v1/appointments/rules", headers=auth("nurse"))).json()["campus_travel_minutes"] == 45


async def test_calendar_and_closure_shape_what_is_offered(api, auth, rooms, make_order):
    make_order("A1")
    cal = {"segment_minutes": 60, "periods": [{"start": "09:00", "end": "11:00", "device_capacity": 1,
                                                "staff_capacity": 1}]}
    assert (await api.put("/api/v1/appointments/rooms/CT1/calendar", json=cal, headers=auth("manager"))).status_code == 204
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    closure = {"start_at": tomorrow.isoformat(), "end_at": (tomorrow + timedelta(days=1)).isoformat(),
               "reason": "tube change"}
    assert (await api.post("/api/v1/appointments/rooms/CT1/closures", json=closure,
                           headers=auth("manager"))).status_code == 201
    q = await api.post("/api/v1/appointments/quote", json={"accession_number": "A1", "channel": "centre", "limit": 30},
                       headers=auth("registrar"))
    slots = q.json()["slots"]
    assert {datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"]) for s in slots} == {timedelta(hours=1)}
    closed = [s for s in slots if any(r["code"] == "closed" for r in s["refusals"])]
    assert closed and all(any("tube change" in r["message"] for r in s["refusals"]) for s in closed)
    assert all(tomorrow <= datetime.fromisoformat(s["start"]) < tomorrow + timedelta(days=1) for s in closed)
