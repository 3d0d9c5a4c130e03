"""The security administrator manages people (R10.2.3): create, temporary password, TOTP, unlock, disable;
no one else may, and every change is an audit record."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import col, select

from api.main import create_app
from domain.security_tables import AuditRecord
from security import totp
from security.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 8, 0, 0, tzinfo=timezone.utc))


@pytest.fixture
async def client(users, clock):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(clock=clock)),
                                 base_url="http://radloop.test") as c:
        yield c


async def _login(client, clock, secret: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={
        "username": "li.na", "password": password, "totp": totp.code_at(secret, clock.now())})


async def test_a_person_from_creation_to_first_login_to_disabling(client, auth, clock, session) -> None:
    admin = auth("security_admin")
    created = await client.post("/api/v1/users", headers=admin, json={
        "username": "li.na", "display_name": "李娜", "role": "radiologist", "department_id": "radiology"})
    assert created.status_code == 201, created.text
    assert created.json()["has_password"] is False and created.json()["totp_enrolled"] is False
    assert (await client.post("/api/v1/users", headers=admin, json={
        "username": "li.na", "display_name": "x", "role": "nurse"})).status_code == 409
    weak = await client.post("/api/v1/users/li.na/password", headers=admin, json={"new_password": "weak"})
    assert weak.status_code == 422
    assert (await client.post("/api/v1/users/li.na/password", headers=admin,
                              json={"new_password": "Temp0rary-Passw0rd"})).status_code == 200
    uri = (await client.post("/api/v1/users/li.na/totp", headers=admin)).json()["otpauth_uri"]
    secret = parse_qs(urlparse(uri).query)["secret"][0]

    first = await _login(client, clock, secret, "Temp0rary-Passw0rd")
    assert first.status_code == 403 and "change it" in first.json()["detail"]  # temporary password
    clock.advance(timedelta(seconds=31))
    changed = await client.post("/api/v1/auth/password", json={
        "username": "li.na", "password": "Temp0rary-Passw0rd", "totp": totp.code_at(secret, clock.now()),
        "new_password": "Her-Own-Passw0rd-1"})
    assert changed.status_code == 204, changed.text
    clock.advance(timedelta(seconds=31))
    token = (await _login(client, clock, secret, "Her-Own-Passw0rd-1")).json()["token"]

    for _ in range(5):
        await _login(client, clock, secret, "Wrong-Passw0rd-00")
    clock.advance(timedelta(seconds=31))
    assert (await _login(client, clock, secret, "Her-Own-Passw0rd-1")).status_code == 423
    listed = {u["username"]: u for u in (await client.get("/api/v1/users", headers=admin)).json()}
    assert listed["li.na"]["locked"] is True and listed["li.na"]["totp_enrolled"] is True
    assert (await client.post("/api/v1/users/li.na/unlock", headers=admin)).json()["locked"] is False
    clock.advance(timedelta(seconds=31))
    assert (await _login(client, clock, secret, "Her-Own-Passw0rd-1")).status_code == 200

    assert (await client.post("/api/v1/users/li.na/disable", headers=admin)).json()["active"] is False
    assert (await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    session.expire_all()
    changes = session.exec(select(AuditRecord).where(AuditRecord.event_type == "user_security_change")
                           .order_by(col(AuditRecord.seq))).all()
    assert [(r.username, r.object_id, r.event_id, r.outcome) for r in changes][:3] == [
        ("security_admin", None, "110137", "success"),  # create: the username is in the body
        ("security_admin", None, "110137", "failure"),
        ("security_admin", "li.na", "110137", "failure"),
    ]
    assert changes[-1].object_id == "li.na" and changes[-1].detail["route"] == "/api/v1/users/{username}/disable"


@pytest.mark.parametrize("role", ["system_admin", "auditor", "manager", "radiologist"])
async def test_only_the_security_administrator_manages_people(client, auth, role) -> None:
    assert (await client.get("/api/v1/users", headers=auth(role))).status_code == 403
    assert (await client.post("/api/v1/users/radiologist/unlock", headers=auth(role))).status_code == 403


async def test_the_security_administrator_cannot_disable_themself(client, auth) -> None:
    r = await client.post("/api/v1/users/security_admin/disable", headers=auth("security_admin"))
    assert r.status_code == 409
