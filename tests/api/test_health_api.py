"""GET /health names what is down (the settings point Temporal, DICOM and HL7 at closed ports)."""
from __future__ import annotations

import time

from core import config, db


async def test_503_names_each_failing_component(api):
    started = time.monotonic()
    r = await api.get("/health")
    assert time.monotonic() - started < 5, "checks run in parallel, each with a short timeout"

    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable"
    assert set(body["failing"]) == {"temporal", "worker", "dicom", "hl7"}
    comps = body["components"]
    assert comps["database"]["status"] == "ok"
    for name in body["failing"]:
        assert comps[name]["status"] == "down" and comps[name]["detail"], name
    assert "Temporal is unreachable" in comps["worker"]["detail"]
    assert "not established" in comps["dicom"]["detail"]


async def test_database_down_is_reported(api, settings, monkeypatch, tmp_path):
    monkeypatch.setenv("RADLOOP_DATABASE_URL", f"sqlite:///{tmp_path}/no/such/dir/x.db")
    config.reset_settings_cache()
    db.reset_engine_cache()
    r = await api.get("/health")
    assert r.status_code == 503
    assert r.json()["components"]["database"]["status"] == "down"
