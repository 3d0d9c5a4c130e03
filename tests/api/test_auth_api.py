"""Login over HTTP (R10.2.3): two factors -> session token and HttpOnly cookie, /me, logout ends it,
lockout and idle timeout with a clock the test moves, every attempt audited; production refuses dev tokens."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlmodel import Session, col, select

from api.main import create_app
from core import config
from domain.enums import Role
from domain.security_tables import AuditRecord
from security import accounts, totp
from security.clock import ManualClock
from security.policy import SecurityPolicy

PASSWORD = "Corr3ct-Horse-Battery"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 8, 0, 0, tzinfo=timezone.utc))


@pytest.fixture
def secret(session: Session, users, clock: ManualClock) -> str:
    """The seeded radiologist, with a password and an enrolled authenticator."""
    user = users["radiologist"]
    accounts.set_password(session, user, PASSWORD, clock, SecurityPolicy())
    s = accounts.enrol_totp(session, user, config.get_settings().codec_keys, clock)
    session.commit()
    return s


@pytest.fixture
async def client(users, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test") as c:
        yield c


async def _login(client: httpx.AsyncClient, clock: ManualClock, secret: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={
        "username": "radiologist", "password": password, "totp": totp.code_at(secret, clock.now())})


def _audit(session: Session, event_type: str) -> list[AuditRecord]:
    session.expire_all()
    return list(session.exec(select(AuditRecord).where(AuditRecord.event_type == event_type)
                             .order_by(col(AuditRecord.seq))).all())


async def test_login_gives_a_bearer_token_and_an_httponly_cookie(client, clock, secret, session) -> None:
    r = await _login(client, clock, secret)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == "radiologist" and body["idle_timeout_seconds"] == 1800
    cookie = r.headers["set-cookie"]
    assert "radloop_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.json()["username"] == "radiologist"
    assert "report_read" in me.json()["permissions"] and "audit_read" not in me.json()["permissions"]
    client.cookies.set("radloop_session", body["token"])
    assert (await client.get("/api/v1/auth/me")).json()["role"] == "radiologist"
    [record] = _audit(session, "login")
    assert (record.outcome, record.username, record.event_id, record.user_id) == ("success", "radiologist", "110114", "u-radiologist")


async def test_a_wrong_code_is_401_and_audited_with_the_reason(client, clock, secret, session) -> None:
    r = await client.post("/api/v1/auth/login", json={"username": "radiologist", "password": PASSWORD, "totp": "000000"})
    assert r.status_code == 401 and r.json() == {"detail": "invalid username, password or code"}
    [record] = _audit(session, "login")
    assert record.outcome == "failure" and record.detail == {"reason": "wrong or reused TOTP code"}


async def test_lockout_after_five_failures_then_fifteen_minutes(client, clock, secret, session) -> None:
    for _ in range(5):
        assert (await _login(client, clock, secret, password="Wrong-Passw0rd!")).status_code == 401
        clock.advance(timedelta(seconds=40))
    locked = await _login(client, clock, secret)
    assert locked.status_code == 423 and "locked until" in locked.json()["detail"]
    clock.advance(timedelta(minutes=15))
    assert (await _login(client, clock, secret)).status_code == 200
    assert [r.outcome for r in _audit(session, "login")] == ["failure"] * 6 + ["success"]


async def test_idle_timeout_and_logout_end_sessions_server_side(client, clock, secret) -> None:
    token = (await _login(client, clock, secret)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/tasks", headers=auth)).status_code == 200  # touched
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/auth/me", headers=auth)).status_code == 200
    clock.advance(timedelta(minutes=31))
    idle = await client.get("/api/v1/auth/me", headers=auth)
    assert idle.status_code == 401 and idle.json()["detail"] == "session ended (idle)"

    clock.advance(timedelta(seconds=31))  # a fresh TOTP step
    token = (await _login(client, clock, secret)).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    after = await client.get("/api/v1/auth/me", headers=auth)
    assert after.status_code == 401 and after.json()["detail"] == "session ended (logout)"


async def test_password_change_with_both_factors_ends_every_session(client, clock, secret) -> None:
    token = (await _login(client, clock, secret)).json()["token"]
    clock.advance(timedelta(seconds=31))
    weak = await client.post("/api/v1/auth/password", json={
        "username": "radiologist", "password": PASSWORD, "totp": totp.code_at(secret, clock.now()), "new_password": "short"})
    assert weak.status_code == 422 and "at least 12 characters" in weak.json()["detail"]
    clock.advance(timedelta(seconds=31))
    ok = await client.post("/api/v1/auth/password", json={
        "username": "radiologist", "password": PASSWORD, "totp": totp.code_at(secret, clock.now()),
        "new_password": "N3w-Passphrase-2026"})
    assert ok.status_code == 204, ok.text
    assert (await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    clock.advance(timedelta(seconds=31))
    assert (await _login(client, clock, secret, password="N3w-Passphrase-2026")).status_code == 200


@pytest.fixture
def production(monkeypatch, settings) -> None:
    monkeypatch.setenv("RADLOOP_MODE", "production")
    config.reset_settings_cache()


async def test_production_refuses_dev_tokens_and_people_without_sessions(production, users, session, client) -> None:
    r = await client.get("/api/v1/tasks", headers={"Authorization": "Bearer dev-registrar"})
    assert r.status_code == 401 and "development tokens" in r.json()["detail"]
    session.add(users["registrar"])
    users["registrar"].api_token_sha256 = __import__("hashlib").sha256(b"some-api-token").hexdigest()
    users["his_system"].api_token_sha256 = __import__("hashlib").sha256(b"his-api-token").hexdigest()
    session.add(users["his_system"])
    session.commit()
    r = await client.get("/api/v1/tasks", headers={"Authorization": "Bearer some-api-token"})
    assert r.status_code == 401 and "log in with password and code" in r.json()["detail"]
    # the HIS, a machine client, keeps its own API token: scoped to its permissions
    r = await client.get("/api/v1/tasks", headers={"Authorization": "Bearer his-api-token"})
    assert r.status_code == 403 and "needs permission task_read" in r.json()["detail"]
    assert (await client.get("/api/v1/orders/A1", headers={"Authorization": "Bearer his-api-token"})).status_code == 404
