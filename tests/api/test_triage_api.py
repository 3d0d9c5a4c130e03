"""Smart triage over HTTP (R6.1.6): the desk's facts give the room and why; after check-in the
decision is listed; a nurse overrides with a reason; managers keep profiles and rules."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from domain.tables import Room
from services import queueing

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def rooms(session):
    session.add_all([Room(id=r, name=r, campus="Main", modalities=m, station_ae_title=r)
                     for r, m in (("CT1", "CT"), ("CT2", "CT"), ("MG1", "MG"))])
    session.commit()


async def test_facts_preview_check_in_decision_and_override(api, auth, rooms, make_order):
    make_order("A1")
    manager = auth("manager")
    assert (await api.put("/api/v1/triage/areas/ward-5", json={"name": "Ward 5", "building": "WARD", "floor": 5},
                          headers=auth("registrar"))).status_code == 403
    for path, body in (("/api/v1/triage/areas/ward-5", {"name": "Ward 5", "building": "WARD", "floor": 5}),
                       ("/api/v1/rooms/CT1/triage-profile", {"building": "OPD", "accepts_bed": False}),
                       ("/api/v1/rooms/CT2/triage-profile", {"building": "WARD", "floor": 1}),
                       ("/api/v1/rooms/MG1/triage-profile", {"sexes": ["F"]}),
                       ("/api/v1/triage/distances/ward-5/CT1", {"metres": 300})):
        r = await api.put(path, json=body, headers=manager)
        assert r.status_code == 204, (path, r.text)
    assert (await api.put("/api/v1/rooms/XX/triage-profile", json={}, headers=manager)).status_code == 404

    r = await api.post("/api/v1/check-ins/A1/triage", json={"area_id": "ward-5", "transport": "bed"},
                       headers=auth("registrar"))
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["room_id"] == "CT2" and "from ward-5" in preview["why"]
    assert {x["room_id"]: x["code"] for x in preview["refusals"]} == {"CT1": "transport", "MG1": "modality"}
    assert preview["facts"]["transport"] == "bed"
    bad = await api.post("/api/v1/check-ins/A1/triage", json={"transport": "skateboard"}, headers=auth("registrar"))
    assert bad.status_code == 422
    missing = await api.post("/api/v1/check-ins/NOPE/triage", json={}, headers=auth("registrar"))
    assert missing.status_code == 404

    ticket = queueing.check_in("A1", "CT1", "u-registrar", datetime.now(timezone.utc))  # what the loop's activity runs
    decisions = (await api.get("/api/v1/check-ins/A1/triage", headers=auth("nurse"))).json()
    assert [(d["kind"], d["room_id"], d["ticket_id"]) for d in decisions] == [("triage", "CT2", ticket.id)]

    body = {"room_id": "CT1", "reason": "CT2 down for service; porters lift the patient"}
    assert (await api.post(f"/api/v1/queue-tickets/{ticket.id}/room-override", json=body,
                           headers=auth("technologist"))).status_code == 403
    assert (await api.post(f"/api/v1/queue-tickets/{ticket.id}/room-override", json={"room_id": "CT1"},
                           headers=auth("nurse"))).status_code == 422  # a reason is required
    wrong = await api.post(f"/api/v1/queue-tickets/{ticket.id}/room-override",
                           json={"room_id": "MG1", "reason": "try"}, headers=auth("nurse"))
    assert wrong.status_code == 409 and "does not do CT" in wrong.text
    r = await api.post(f"/api/v1/queue-tickets/{ticket.id}/room-override", json=body, headers=auth("nurse"))
    assert r.status_code == 200 and r.json()["queue_id"] == "room-CT1", r.text
    decisions = (await api.get("/api/v1/check-ins/A1/triage", headers=auth("registrar"))).json()
    assert decisions[-1]["kind"] == "override" and decisions[-1]["actor"] == "u-nurse"
    assert decisions[-1]["detail"]["reason"] == body["reason"]
    assert decisions[-1]["detail"]["overrides"][0]["code"] == "transport"


async def test_rules_are_published_as_new_versions(api, auth, rooms):
    first = (await api.get("/api/v1/triage/rules", headers=auth("registrar"))).json()
    assert first["version"] == 1 and first["merge_rules"]
    assert (await api.post("/api/v1/triage/rules", json={}, headers=auth("nurse"))).status_code == 403
    r = await api.post("/api/v1/triage/rules", json={"reserve_isolation_rooms": True, "merge_rules": []},
                       headers=auth("manager"))
    assert r.status_code == 201 and r.json()["version"] == 2, r.text
    now = (await api.get("/api/v1/triage/rules", headers=auth("nurse"))).json()
    assert now["version"] == 2 and now["reserve_isolation_rooms"] and now["merge_rules"] == []
