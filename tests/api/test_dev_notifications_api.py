"""The dev notification sink, fed by apprise itself over real HTTP (as the critical-value loop does)."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import apprise
import httpx
import pytest
import uvicorn

from api.main import create_app
from core.config import reset_settings_cache


async def test_post_then_list_round_trip(api, settings):
    payload = {"version": "1.0", "title": "Critical value", "message": "A1: pneumothorax", "attachments": [], "type": "warning"}
    r = await api.post("/api/v1/dev/notifications", json=payload)
    assert r.status_code == 200, r.text
    await api.post("/api/v1/dev/notifications", json={**payload, "title": "second"})

    listed = (await api.get("/api/v1/dev/notifications")).json()
    assert [n["title"] for n in listed] == ["Critical value", "second"], "newest last"
    assert listed[0]["message"] == "A1: pneumothorax" and listed[0]["type"] == "warning"
    assert listed[0]["received_at"]

    lines = (settings.data_dir / "notifications.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["title"] for line in lines] == ["Critical value", "second"]


@pytest.fixture
def live_api(settings) -> Iterator[str]:
    """The app on a real socket (random port) so apprise can reach it over HTTP."""
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        thread.join(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def test_apprise_json_url_delivers_into_the_sink(api, live_api):
    notifier = apprise.Apprise()
    assert notifier.add(f"json://{live_api}/api/v1/dev/notifications")
    sent = await asyncio.to_thread(notifier.notify, title="临界值 Critical", body="A2: free air", notify_type="failure")
    assert bool(sent), sent

    [got] = (await api.get("/api/v1/dev/notifications")).json()
    assert (got["title"], got["message"], got["type"]) == ("临界值 Critical", "A2: free air", "failure")


async def test_not_mounted_in_production(settings, monkeypatch):
    monkeypatch.setenv("RADLOOP_MODE", "production")
    reset_settings_cache()
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/api/v1/dev/notifications", json={"title": "x"})).status_code == 404
