"""Task forms are served as the JSON Schema files the front ends render."""
from __future__ import annotations

import json

from core.config import REPO_ROOT
from domain.enums import TaskType


async def test_lists_every_task_type(api, auth):
    r = await api.get("/api/v1/ui-schemas", headers=auth("nurse"))
    assert r.status_code == 200
    listed = {s["task_type"]: s for s in r.json()}
    assert set(listed) == {t.value for t in TaskType}
    assert listed["check_in"]["roles"] == ["registrar", "nurse"]
    assert listed["check_in"]["url"] == "/api/v1/ui-schemas/check_in"


async def test_serves_the_file_for_each_type(api, auth):
    for t in TaskType:
        r = await api.get(f"/api/v1/ui-schemas/{t.value}", headers=auth("nurse"))
        assert r.status_code == 200, t
        on_disk = json.loads((REPO_ROOT / "ui_schemas" / f"{t.value}.json").read_text(encoding="utf-8"))
        assert r.json() == on_disk


async def test_unknown_type_is_404_and_schemas_need_a_token(api, auth):
    assert (await api.get("/api/v1/ui-schemas/tea_break", headers=auth("nurse"))).status_code == 404
    assert (await api.get("/api/v1/ui-schemas/check_in")).status_code == 401
