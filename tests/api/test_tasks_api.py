"""Inbox, claim/release and the checks before a completion reaches the loop.

Rows are inserted as the loop's activities would write them. Completion's happy
path needs a running loop: see test_orders_e2e.py.
"""
from __future__ import annotations

import pytest

from domain.tables import HumanTask

# The inbox query and the conditional claim updates are database-sensitive: run on both.
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

CHECK_IN = {"identity_document_type": "id_card", "identity_verified": True}


@pytest.fixture
def inbox_rows(make_task, at):
    """Registrar tasks of mixed priority and due time, plus others' tasks that must not show."""
    return {
        "routine_late": make_task("check_in", 1, priority_rank=3, due_at=at(-10)),
        "routine_soon": make_task("check_in", 2, priority_rank=3, due_at=at(20)),
        "stat": make_task("check_in", 3, priority_rank=1, due_at=at(60)),
        "undated": make_task("check_in", 4, priority_rank=3, due_at=None),
        "done": make_task("check_in", 5, state="done"),
        "claimed_by_nurse": make_task("check_in", 6, state="claimed", assignee_id="u-nurse"),
        "tech": make_task("perform_exam", 1),
        "assigned_to_registrar": make_task("order_fix", 1, assignee_id="u-registrar"),
    }


def ids(resp) -> list[str]:
    return [t["id"] for t in resp.json()["items"]]


async def test_inbox_is_the_roles_live_tasks_most_urgent_first(api, auth, inbox_rows):
    r = await api.get("/api/v1/tasks", headers=auth("registrar"))
    assert r.status_code == 200, r.text
    rows = inbox_rows
    assert ids(r) == [
        rows["stat"].id, rows["routine_late"].id, rows["routine_soon"].id,
        rows["claimed_by_nurse"].id,  # check_in admits registrars and nurses alike
        rows["assigned_to_registrar"].id,  # a clinician's task, but assigned to this registrar
        rows["undated"].id,
    ]
    assert rows["tech"].id not in ids(r) and rows["done"].id not in ids(r)
    overdue = {t["id"]: t["overdue"] for t in r.json()["items"]}
    assert overdue[rows["routine_late"].id] is True
    assert overdue[rows["routine_soon"].id] is False
    assert r.json()["total"] == 6


async def test_inbox_sorts_by_priority_then_due_with_undated_last(api, auth, inbox_rows):
    r = await api.get("/api/v1/tasks", params={"claimed": "unclaimed", "task_type": "check_in"}, headers=auth("registrar"))
    rows = inbox_rows
    assert ids(r) == [rows["stat"].id, rows["routine_late"].id, rows["routine_soon"].id, rows["undated"].id]


async def test_inbox_filters(api, auth, inbox_rows, at):
    rows = inbox_rows
    mine = await api.get("/api/v1/tasks", params={"claimed": "mine"}, headers=auth("registrar"))
    assert ids(mine) == [rows["assigned_to_registrar"].id]

    done = await api.get("/api/v1/tasks", params={"state": "done"}, headers=auth("registrar"))
    assert ids(done) == [rows["done"].id]

    due = await api.get(
        "/api/v1/tasks", params={"due_before": at(25).isoformat()}, headers=auth("registrar")
    )
    assert set(ids(due)) == {rows["routine_late"].id, rows["routine_soon"].id}

    tech = await api.get("/api/v1/tasks", headers=auth("technologist"))
    assert ids(tech) == [rows["tech"].id]


async def test_inbox_pages(api, auth, inbox_rows):
    first = await api.get("/api/v1/tasks", params={"limit": 2}, headers=auth("registrar"))
    second = await api.get("/api/v1/tasks", params={"limit": 2, "offset": 2}, headers=auth("registrar"))
    assert len(ids(first)) == 2 and len(ids(second)) == 2
    assert not set(ids(first)) & set(ids(second))
    assert first.json()["total"] == second.json()["total"] == 6
    bad = await api.get("/api/v1/tasks", params={"limit": 0}, headers=auth("registrar"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "limit"


async def test_get_task_by_id_with_slashes(api, auth, make_task):
    t = make_task("check_in", 1)
    r = await api.get(f"/api/v1/tasks/{t.id}", headers=auth("nurse"))
    assert r.status_code == 200 and r.json()["id"] == t.id == "exam-loop-A2026010100001/check_in/1"
    assert r.json()["form_schema_url"] == "/api/v1/ui-schemas/check_in"
    assert (await api.get(f"/api/v1/tasks/{t.id}", headers=auth("technologist"))).status_code == 403
    assert (await api.get(f"/api/v1/tasks/{t.id}", headers=auth("auditor"))).status_code == 200
    assert (await api.get("/api/v1/tasks/nope/1", headers=auth("nurse"))).status_code == 404


async def test_claim_release_state_machine(api, auth, make_task, session):
    t = make_task("check_in", 1)
    url = f"/api/v1/tasks/{t.id}"

    assert (await api.post(url + "/claim", headers=auth("technologist"))).status_code == 403

    r = await api.post(url + "/claim", headers=auth("registrar"))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "claimed" and r.json()["assignee_id"] == "u-registrar"
    again = await api.post(url + "/claim", headers=auth("registrar"))
    assert again.status_code == 200, "claiming one's own claim again is a no-op"

    other = await api.post(url + "/claim", headers=auth("nurse"))
    assert other.status_code == 409 and "claimed by u-registrar" in other.json()["detail"]

    assert (await api.post(url + "/release", headers=auth("nurse"))).status_code == 403
    r = await api.post(url + "/release", headers=auth("registrar"))
    assert r.status_code == 200 and r.json()["state"] == "open" and r.json()["assignee_id"] is None
    assert (await api.post(url + "/release", headers=auth("registrar"))).status_code == 409

    assert (await api.post(url + "/claim", headers=auth("nurse"))).status_code == 200
    session.expire_all()
    row = session.get(HumanTask, t.id)
    assert (row.state, row.assignee_id) == ("claimed", "u-nurse")


@pytest.mark.parametrize("state", ["done", "cancelled"])
async def test_finished_tasks_cannot_be_claimed_or_completed(api, auth, make_task, state):
    t = make_task("check_in", 1, state=state)
    url = f"/api/v1/tasks/{t.id}"
    claim = await api.post(url + "/claim", headers=auth("registrar"))
    assert claim.status_code == 409 and state in claim.json()["detail"]
    done = await api.post(url + "/complete", json={"data": CHECK_IN}, headers=auth("registrar"))
    assert done.status_code == 409


async def test_complete_checks_role_then_claim(api, auth, make_task):
    t = make_task("check_in", 1, state="claimed", assignee_id="u-nurse")
    url = f"/api/v1/tasks/{t.id}/complete"
    assert (await api.post(url, json={"data": CHECK_IN}, headers=auth("technologist"))).status_code == 403
    r = await api.post(url, json={"data": CHECK_IN}, headers=auth("registrar"))
    assert r.status_code == 409 and "claimed by u-nurse" in r.json()["detail"]


@pytest.mark.parametrize(
    ("task_type", "data", "field", "msg_part"),
    [
        ("check_in", {"identity_document_type": "id_card"}, "data", "identity_verified"),
        ("check_in", {"identity_document_type": "library_card", "identity_verified": True}, "data.identity_document_type", "is not one of"),
        ("check_in", {**CHECK_IN, "extra": 1}, "data", "extra"),
        # A cross-field rule only the pydantic form knows:
        ("perform_exam", {"method": "plain + contrast", "contrast_used": True}, "data", "contrast_agent is required"),
        ("image_qc", {"grade": "D"}, "data", "reason is required"),
    ],
)
async def test_invalid_form_is_422_with_reasons(api, auth, make_task, task_type, data, field, msg_part):
    t = make_task(task_type, 1)
    role = {"check_in": "registrar", "perform_exam": "technologist", "image_qc": "qc_officer"}[task_type]
    r = await api.post(f"/api/v1/tasks/{t.id}/complete", json={"data": data}, headers=auth(role))
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["field"] == field and msg_part in e["msg"] for e in errors), errors


async def test_valid_form_reaches_for_the_loop(api, auth, make_task):
    """Everything the API checks passes; the loop (Temporal, down here) is what is missing."""
    t = make_task("check_in", 1)
    r = await api.post(f"/api/v1/tasks/{t.id}/complete", json={"data": CHECK_IN}, headers=auth("registrar"))
    assert r.status_code == 503


async def test_unknown_task_is_404(api, auth):
    r = await api.post("/api/v1/tasks/exam-loop-A0/check_in/1/complete", json={"data": {}}, headers=auth("registrar"))
    assert r.status_code == 404
