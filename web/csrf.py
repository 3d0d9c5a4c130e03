"""CSRF protection of the pages' POST forms, bound to the server-side session.

The token is an HMAC of the session token (which only the HttpOnly cookie carries), so
it needs no storage, differs per session and dies with it. Only requests authenticated
by the cookie need it: a bearer token is never sent by a browser on its own, so a
forged cross-site request cannot carry one. SameSite=Strict on the cookie is the
second line.
"""
from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, status

from api.deps import SESSION_COOKIE, CurrentUser

FIELD = "csrf_token"


def _bearer(request: Request) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


def csrf_token(request: Request) -> str:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return ""
    return hmac.new(token.encode("utf-8"), b"radloop-web-csrf", hashlib.sha256).hexdigest()


async def require_csrf(request: Request, _user: CurrentUser) -> None:
    """Route dependency for POST pages: refuse (403) a cookie-authenticated form without the right token.

    Depends on the caller being known first, so no credentials is still 401, not 403."""
    if _bearer(request):
        return
    expected = csrf_token(request)
    sent = (await request.form()).get(FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="csrf")
