"""Who may call what: 401 without a valid token, 403 (with the reason) for the wrong role.

Role checks run before the body is read and before Temporal is needed, so these
hold with no Temporal server at all.
"""
from __future__ import annotations

import pytest

VALID_ORDER = {
    "placer_order_number": "PO-1",
    "patient": {"identifiers": [{"system": "MRN", "value": "1"}], "name": "Li Si", "sex": "F", "birth_date": "1980-01-02"},
    "procedure": {"code": "CT1", "name": "CT head", "modality": "CT", "body_part": "HEAD"},
    "ordering": {"clinician_id": "c1", "clinician_name": "Dr Wang", "department": "ED"},
}

# (path, body, a role that may NOT call it)
POST_ROUTES = [
    ("/api/v1/orders", VALID_ORDER, "technologist"),
    ("/api/v1/loops/A1/exam-events", {"kind": "started"}, "registrar"),
    ("/api/v1/loops/A1/reschedule", {"reason": "x"}, "technologist"),
    ("/api/v1/loops/A1/cancel", {"reason": "x"}, "radiologist"),
    ("/api/v1/loops/A1/corrections", {"reason": "x"}, "registrar"),
    ("/api/v1/critical-values/critical-A1-1/ack", {"clinician_name": "x", "read_back": "y"}, "radiologist"),
    ("/api/v1/codec/encode", {"payloads": []}, "clinician"),
    ("/api/v1/codec/decode", {"payloads": []}, "clinician"),
]


async def test_no_token_is_401_with_challenge(api):
    r = await api.get("/api/v1/tasks")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"detail": "missing bearer token"}


@pytest.mark.parametrize("header", ["Bearer dev-nobody", "Bearer ", "Basic dXNlcjpwdw==", "Bearer dev-retired"])
async def test_bad_or_inactive_token_is_401(api, header):
    r = await api.get("/api/v1/tasks", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


async def test_valid_token_is_accepted(api, auth):
    r = await api.get("/api/v1/tasks", headers=auth("registrar"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("path", "body", "role"), POST_ROUTES)
async def test_wrong_role_is_403_with_reason(api, auth, path, body, role):
    r = await api.post(path, json=body, headers=auth(role))
    assert r.status_code == 403, r.text
    assert f"role '{role}' may not do this" in r.json()["detail"]


@pytest.mark.parametrize(("path", "body", "role"), POST_ROUTES)
async def test_post_routes_require_a_token(api, path, body, role):
    r = await api.post(path, json=body)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "role"),
    [
        ("/api/v1/loops/A1/exam-events", {"kind": "started"}, "technologist"),
        ("/api/v1/loops/A1/cancel", {"reason": "patient left"}, "nurse"),
        ("/api/v1/orders", VALID_ORDER, "his_system"),
    ],
)
async def test_right_role_gets_past_the_check_and_meets_temporal_down(api, auth, path, body, role):
    """With the right role and a valid body the only obstacle left is Temporal (down here): 503."""
    r = await api.post(path, json=body, headers=auth(role))
    assert r.status_code == 503, r.text
    assert "workflow service unavailable" in r.json()["detail"]
