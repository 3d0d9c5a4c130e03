"""Pages answer in HTML, refusals included: a route class that turns the API's refusals into pages.

401 (no or ended session) is the login page itself, still with status 401 and saying why
(idle timeout, session too old, logged out); 403 and 404 are short pages with the reason;
a loop refusal (`services.errors`) keeps its status. The statuses are the API's, so the
role x endpoint matrix test covers the pages too.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from api.deps import SESSION_COOKIE
from api.errors import STATUS_BY_ERROR, TemporalUnavailable
from services.errors import LoopError
from web.render import page


def login_reason(detail: str) -> str:
    """The catalogue key telling a person why they see the login page."""
    if "(idle)" in detail:
        return "login.expired_idle"
    if "(expired)" in detail:
        return "login.expired_age"
    if "ended" in detail or "unknown session" in detail:
        return "login.ended"
    return "login.required"


def login_page(request: Request, reason: str | None, status_code: int = 401, error: str | None = None) -> Response:
    response = page(request, "login.html", status_code=status_code, reason=reason, error=error,
                    next_path=request.url.path if request.method == "GET" else "/web/")
    if reason in ("login.expired_idle", "login.expired_age", "login.ended"):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def error_page(request: Request, status_code: int, detail: str) -> Response:
    return page(request, "error.html", status_code=status_code, code=status_code, detail=detail,
                user=getattr(request.state, "web_user", None))


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code == 401:
                    return login_page(request, login_reason(str(exc.detail)))
                return error_page(request, exc.status_code, str(exc.detail))
            except LoopError as exc:
                code = next((c for t, c in STATUS_BY_ERROR.items() if isinstance(exc, t)), 422)
                return error_page(request, code, exc.reason)
            except RequestValidationError as exc:
                return error_page(request, 422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                          for e in exc.errors()))
            except TemporalUnavailable as exc:
                return error_page(request, 503, f"workflow service unavailable: {exc}")

        return handle
