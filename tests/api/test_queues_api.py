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
