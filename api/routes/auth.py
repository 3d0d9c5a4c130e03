"""Interactive login with two factors, the caller's own session, logout, password change (R10.2.3).

`POST /api/v1/auth/login` takes username, password and the current TOTP code and
answers a session token, both in the body (for `Authorization: Bearer`) and as
an HttpOnly, SameSite=Strict cookie (for browsers). Refusals do not say which
factor was wrong; the audit record does. Every login, refusal and logout is
audited here (event 110114 User Authentication), with the username tried.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    SESSION_COOKIE,
    _bearer,
    declare_public,
    get_clock,
    in_thread,
    request_token,
    require,
)
from api.errors import ErrorBody
from core.config import get_settings
from core.db import session_scope
from domain.tables import User
from security import accounts, sessions
from security.audit import AuditEvent, AuditTrail
from security.clock import Clock
from security.passwords import PasswordRejected
from security.permissions import Permission, permissions_of
from security.policy import SecurityPolicy

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Me = Annotated[User, Depends(require(Permission.session_self))]
Public = [Depends(declare_public("Anyone may try to log in; the credentials are the check."))]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)
    totp: str = Field(min_length=6, max_length=6, pattern=r"^\d{6}$", description="Current code of the authenticator")


class SessionOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`; also set as an HttpOnly cookie")
    token_type: str = "bearer"
    user_id: str
    username: str
    role: str
    idle_timeout_seconds: int


class MeOut(BaseModel):
    user_id: str
    username: str
    display_name: str
    role: str
    department_id: str | None
    permissions: list[str]


class PasswordChangeIn(LoginIn):
    new_password: str = Field(min_length=1, max_length=1000)


def _audit(request: Request, event: AuditEvent) -> None:
    trail: AuditTrail = request.app.state.audit_trail
    trail.record(event)


def _auth_event(request: Request, username: str, user: User | None, outcome: str, event_type: str,
                reason: str = "") -> AuditEvent:
    client = request.client.host if request.client else ""
    return AuditEvent(
        user_id=user.id if user else None, username=username, role=user.role if user else None, source=client,
        event_type=event_type, event_id="110114", action="E", object_type="user", object_id=username,
        outcome=outcome,  # type: ignore[arg-type]
        detail={"reason": reason} if reason else {},
    )


def _login(body: LoginIn, clock: Clock, source: str) -> sessions.LoggedIn:
    settings = get_settings()
    policy = SecurityPolicy.from_settings(settings)
    with session_scope() as db:
        try:
            return sessions.login(db, body.username, body.password, body.totp, clock, source, policy, settings.codec_keys)
        except sessions.LoginRefused:
            db.commit()  # the failed attempt and any lock persist
            raise


def _refusal(err: sessions.LoginRefused) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if err.status_code == 401 else {}
    return JSONResponse({"detail": err.public}, status_code=err.status_code, headers=headers)


_REFUSALS: dict[int | str, dict] = {
    401: {"model": ErrorBody, "description": "Wrong username, password or code (not said which)"},
    403: {"model": ErrorBody, "description": "Password expired or must be changed first"},
    423: {"model": ErrorBody, "description": "Locked after too many failures"},
}


@router.post("/login", response_model=SessionOut, dependencies=Public, responses=_REFUSALS)
async def login(body: LoginIn, request: Request, response: Response) -> SessionOut | JSONResponse:
    """Password and TOTP code -> a new server-side session; every role needs both factors."""
    source = request.client.host if request.client else ""
    try:
        done = await in_thread(_login, body, get_clock(request), source)
    except sessions.LoginRefused as err:
        await in_thread(_audit, request, _auth_event(request, body.username, None, "failure", "login", err.reason))
        return _refusal(err)
    await in_thread(_audit, request, _auth_event(request, body.username, done.user, "success", "login"))
    policy = SecurityPolicy.from_settings(get_settings())
    response.set_cookie(
        SESSION_COOKIE, done.token, httponly=True, samesite="strict", secure=get_settings().is_production,
        max_age=int(policy.max_session_age.total_seconds()), path="/",
    )
    return SessionOut(token=done.token, user_id=done.user.id, username=done.user.username, role=done.user.role,
                      idle_timeout_seconds=int(policy.idle_timeout.total_seconds()))


def _logout(token: str, clock: Clock) -> bool:
    with session_scope() as db:
        return sessions.logout(db, token, clock)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    user: Me, request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """End this session server-side: its token is refused from now on, whoever holds a copy."""
    token = request_token(request, credentials)
    ended = bool(token and sessions.is_session_token(token)) and await in_thread(_logout, token, get_clock(request))
    await in_thread(_audit, request, _auth_event(request, user.username, user, "success", "logout",
                                                 "" if ended else "no session (API token)"))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=MeOut)
def me(user: Me) -> MeOut:
    """Who the token belongs to and what that role may do."""
    from domain.enums import Role

    return MeOut(user_id=user.id, username=user.username, display_name=user.display_name, role=user.role,
                 department_id=user.department_id,
                 permissions=sorted(p.value for p in permissions_of(Role(user.role))))


def _change_password(body: PasswordChangeIn, clock: Clock, source: str) -> User:
    settings = get_settings()
    policy = SecurityPolicy.from_settings(settings)
    with session_scope() as db:
        try:
            user, _cred = sessions.check_credentials(db, body.username, body.password, body.totp, clock.now(),
                                                     source, policy, settings.codec_keys)
        except sessions.PasswordChangeRequired:
            user = accounts.user_by_username(db, body.username)
            assert user is not None  # both factors passed before this refusal
        except sessions.LoginRefused:
            db.commit()
            raise
        accounts.set_password(db, user, body.new_password, clock, policy)
        sessions.end_all_sessions(db, user.id, clock, "password changed")
        return user


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, dependencies=Public,
             responses={**_REFUSALS, 422: {"model": ErrorBody, "description": "The new password breaks the policy"}})
async def change_password(body: PasswordChangeIn, request: Request) -> Response:
    """Change one's password with both factors (works when it has expired); every session ends."""
    source = request.client.host if request.client else ""
    try:
        user = await in_thread(_change_password, body, get_clock(request), source)
    except sessions.LoginRefused as err:
        await in_thread(_audit, request, _auth_event(request, body.username, None, "failure", "password_change", err.reason))
        return _refusal(err)
    except PasswordRejected as err:
        await in_thread(_audit, request, _auth_event(request, body.username, None, "failure", "password_change",
                                                     "policy"))
        return JSONResponse({"detail": f"new password refused: {err}"}, status_code=422)
    event = _auth_event(request, body.username, user, "success", "password_change")
    event.event_id = "110137"  # User Security Attributes Changed
    await in_thread(_audit, request, event)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


