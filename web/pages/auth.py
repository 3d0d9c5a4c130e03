"""Log in (password + TOTP), log out, and the home page that sends each role to its work.

Login reuses the API's login (`api.routes.auth`): the same lockout, audit records and
server-side session; the session token goes only into the HttpOnly, SameSite=Strict
cookie, never into the page.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api.deps import SESSION_COOKIE, declare_public, get_clock, in_thread, require
from api.routes.auth import LoginIn, _audit, _auth_event, _login
from core.config import get_settings
from domain.tables import User
from security import sessions
from security.permissions import Permission, allows
from security.policy import SecurityPolicy
from web.csrf import require_csrf
from web.render import page
from web.route import PageRoute, login_page

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)
Public = [Depends(declare_public("The login page and form: the credentials are the check."))]
Me = Annotated[User, Depends(require(Permission.session_self))]


def safe_next(path: str | None) -> str:
    """Only back to one of our own pages (no open redirect)."""
    return path if path and path.startswith("/web/") and "//" not in path and "\\" not in path else "/web/"


@router.get("/login", dependencies=Public)
def login_form(request: Request, next: str = "/web/", bye: bool = False) -> Response:  # noqa: A002
    return page(request, "login.html", reason="login.bye" if bye else None, error=None, next_path=safe_next(next))


@router.post("/login", dependencies=Public)
async def login_submit(request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                       totp: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/web/") -> Response:  # noqa: A002
    try:
        body = LoginIn(username=username, password=password, totp=totp)
    except ValidationError:
        return login_page(request, None, status_code=401, error="login.failed")
    source = request.client.host if request.client else ""
    try:
        done = await in_thread(_login, body, get_clock(request), source)
    except sessions.LoginRefused as err:
        await in_thread(_audit, request, _auth_event(request, username, None, "failure", "login", err.reason))
        key = {423: "login.locked", 403: "login.password_change"}.get(err.status_code, "login.failed")
        return login_page(request, None, status_code=err.status_code, error=key)
    await in_thread(_audit, request, _auth_event(request, username, done.user, "success", "login"))
    response = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    policy = SecurityPolicy.from_settings(get_settings())
    response.set_cookie(SESSION_COOKIE, done.token, httponly=True, samesite="strict", secure=get_settings().is_production,
                        max_age=int(policy.max_session_age.total_seconds()), path="/")
    return response


def _logout(token: str, request: Request) -> bool:
    from core.db import session_scope

    with session_scope() as db:
        return sessions.logout(db, token, get_clock(request))


@router.post("/logout", dependencies=[Depends(require_csrf)])
async def logout(user: Me, request: Request) -> Response:
    """End the session server-side, drop the cookie, show the login page saying so."""
    token = request.cookies.get(SESSION_COOKIE, "")
    ended = sessions.is_session_token(token) and await in_thread(_logout, token, request)
    await in_thread(_audit, request, _auth_event(request, user.username, user, "success", "logout",
                                                 "" if ended else "no session (API token)"))
    response = RedirectResponse("/web/login?bye=1", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(user: Me, request: Request) -> Response:
    """Each role's first page: the inbox for people with tasks, the dashboard for managers."""
    for perm, href in ((Permission.task_work, "/web/inbox"), (Permission.quality_metrics_read, "/web/dashboard"),
                       (Permission.task_read, "/web/inbox")):
        if allows(user.role, perm):
            return RedirectResponse(href, status_code=status.HTTP_303_SEE_OTHER)
    return page(request, "home.html", user=user)
