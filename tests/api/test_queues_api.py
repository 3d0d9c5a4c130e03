"""Queue terminals and displays over HTTP, including the SSE feed of boards."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


async def test_join_call_board_and_feed(api, auth):
    r = await api.put("/api/v1/queues/q-ct", json={"name": "CT", "rooms": ["CT1"]}, headers=auth("manager"))
    assert r.status_code == 204
    for acc, name, age in (("A1", "张三丰", 40), ("A2", "李四", 90)):
        r = await api.post("/api/v1/queues/q-ct/tickets", json={"accession_number": acc, "patient_name": name,
                                                                 "traits": {"age": age}}, headers=auth("registrar"))
        assert r.status_code == 201, r.text
    assert (await api.post("/api/v1/rooms/CT1/call-next", headers=auth("registrar"))).status_code == 403
    called = await api.post("/api/v1/rooms/CT1/call-next", headers=auth("technologist"))
    assert called.json()["accession_number"] == "A2"
    board = (await api.get("/api/v1/rooms/CT1/board", headers=auth("auditor"))).json()
    assert board == {"room_id": "CT1", "current": "李*", "next": ["张*丰"], "waiting": 1}
    async with api.stream("GET", "/api/v1/queues/feed", params={"rooms": "CT1", "max_events": 1},
                          headers=auth("nurse")) as feed:
        assert feed.headers["content-type"].startswith("text/event-stream")
        text = (await feed.aread()).decode()
    assert text.startswith("event: board\n")
    data = json.loads(text.split("data: ", 1)[1])
    assert data["current"] == "李*" and "李四" not in text
    done = await api.post(f"/api/v1/queue-tickets/{called.json()['id']}/finish", json={}, headers=auth("technologist"))
    assert done.json()["state"] == "done"
    stale = await api.post(f"/api/v1/queue-tickets/{called.json()['id']}/recall", json={}, headers=auth("technologist"))
    assert stale.status_code == 409


async def test_condition_change_and_eta(api, auth):
    await api.put("/api/v1/queues/q-us", json={"name": "US", "rooms": ["US1"]}, headers=auth("manager"))
    ids = []
    for acc in ("B1", "B2"):
        r = await api.post("/api/v1/queues/q-us/tickets", json={"accession_number": acc, "patient_name": "王五",
                                                                 "traits": {"age": 40}}, headers=auth("registrar"))
        ids.append(r.json()["id"])
    assert (await api.get(f"/api/v1/queue-tickets/{ids[1]}/eta", headers=auth("auditor"))).json()["position"] == 1
    body = {"traits": {"age": 40, "priority": "stat"}, "reason": "syncope in the waiting area"}
    assert (await api.post(f"/api/v1/queue-tickets/{ids[1]}/condition", json=body,
                           headers=auth("technologist"))).status_code == 403
    r = await api.post(f"/api/v1/queue-tickets/{ids[1]}/condition", json=body, headers=auth("nurse"))
    assert r.status_code == 200 and r.json()["tier"] == 0, r.text
    eta = (await api.get(f"/api/v1/queue-tickets/{ids[1]}/eta", headers=auth("auditor"))).json()
    assert eta["position"] == 0 and eta["minutes"] == 0
    again = await api.post(f"/api/v1/queue-tickets/{ids[1]}/condition", json=body, headers=auth("nurse"))
    assert again.status_code == 409 and "nothing to expedite" in again.text


async def test_eta_notices_reach_the_waiting_patients(api, auth, notify_sink):
    await api.put("/api/v1/queues/q-dx", json={"name": "DX", "rooms": ["DX1"]}, headers=auth("manager"))
    for acc in ("D1", "D2", "D3"):
        await api.post("/api/v1/queues/q-dx/tickets", json={"accession_number": acc, "patient_name": "赵六",
                                                            "traits": {"age": 40}}, headers=auth("registrar"))
    assert (await api.post("/api/v1/queues/q-dx/eta-notices", headers=auth("registrar"))).status_code == 403
    r = await api.post("/api/v1/queues/q-dx/eta-notices", params={"limit": 2}, headers=auth("nurse"))
    assert r.status_code == 200, r.text
    assert [(n["position"], n["delivered"]) for n in r.json()] == [(0, True), (1, True)]
    bodies = notify_sink.bodies()
    assert len(bodies) == 2 and "1 patient(s) ahead of you" in bodies[1] and "赵六" not in "".join(bodies)
