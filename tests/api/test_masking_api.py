"""Patient names in API answers as each role may see them (R10.3.4 (5))."""
from __future__ import annotations

from domain.enums import Role


async def test_orders_show_full_names_to_care_roles_and_masked_to_oversight(api, auth, make_order, session) -> None:
    make_order("A2026010100021")
    seen = {}
    for role in (Role.clinician, Role.radiologist, Role.qc_officer, Role.manager, Role.auditor, Role.his_system):
        r = await api.get("/api/v1/orders/A2026010100021", headers=auth(role))
        assert r.status_code == 200, (role, r.text)
        seen[role.value] = r.json()["patient_name"]
    assert seen == {"clinician": "Zhang San", "radiologist": "Zhang San", "qc_officer": "Z**** S**",
                    "manager": "Z**** S**", "auditor": "Z**** S**", "his_system": "Z**** S**"}


async def test_task_contexts_are_masked_for_overseers(api, auth, make_order, make_task) -> None:
    make_order("A2026010100001")
    task = make_task("check_in", context={"patient_name": "张三丰", "phone": "13812345678"})
    full = await api.get(f"/api/v1/tasks/{task.id}", headers=auth(Role.registrar))
    assert full.json()["context"] == {"patient_name": "张三丰", "phone": "13812345678"}
    masked = await api.get(f"/api/v1/tasks/{task.id}", headers=auth(Role.manager))
    assert masked.status_code == 200 and masked.json()["context"] == {"patient_name": "张*丰", "phone": "138****5678"}
    inbox = await api.get("/api/v1/tasks", headers=auth(Role.nurse))
    assert [i["context"]["phone"] for i in inbox.json()["items"]] == ["13812345678"]
