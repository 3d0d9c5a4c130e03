"""Audit of the HTTP edge (R7.1.5, R10.2.3, R10.5): one record per request that touches patient data.

An ASGI middleware, so it sees every outcome (2xx, 403, 404, 500) after the route
ran: which route matched (its declared permission says whether and how it is
audited, `security.permissions.AUDITED`), who called (left on the request state
by `get_current_user`), from where, on which object (the path parameters), and
the status. The record is written after the response is complete; a database
that refuses it makes the trail spool to disk instead, so the response never
waits on, or fails for, the audit store. Logins and logouts are audited by
their route, which knows the username even when authentication fails.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import declared_permissions
from security.audit import AuditEvent, AuditTrail
from security.permissions import AUDITED, AuditKind, Permission


def audit_kind(route: APIRoute) -> AuditKind | None:
    """How requests to `route` are audited, from the permission it declares (None: not audited here)."""
    cached = getattr(route, "_radloop_audit_kind", False)
    if cached is not False:
        return cached
    kind = None
    for declared in declared_permissions(route):
        if declared in Permission.__members__:
            kind = AUDITED.get(Permission(declared))
    route._radloop_audit_kind = kind  # type: ignore[attr-defined]
    return kind


def source_of(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def event_for(scope: Scope, route: APIRoute, kind: AuditKind, status_code: int) -> AuditEvent:
    state: dict[str, Any] = scope.get("state") or {}
    principal: dict[str, Any] = state.get("principal") or {}
    params: dict[str, Any] = scope.get("path_params") or {}
    object_type, object_id = next(iter(params.items()), (None, None))
    query = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    return AuditEvent(
        user_id=principal.get("user_id"), username=principal.get("username"), role=principal.get("role"),
        source=source_of(scope), event_type=kind.event_type, event_id=kind.event_id, action=kind.action,
        object_type=object_type, object_id=str(object_id) if object_id is not None else None,
        outcome="success" if status_code < 400 else "failure",
        detail={"method": scope["method"], "route": route.path_format, "status": status_code, "query": query,
                **({"access": state["access_basis"]} if state.get("access_basis") not in (None, "role") else {}),
                **(state.get("audit_detail") or {})},
    )


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        status_code = 500  # an exception before the response started ends as a 500

        async def _send(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            kind = audit_kind(route) if isinstance(route, APIRoute) else None
            if kind is not None:
                trail: AuditTrail = scope["app"].state.audit_trail
                event = event_for(scope, route, kind, status_code)  # type: ignore[arg-type]
                with anyio.CancelScope(shield=True):  # a client hanging up does not cancel the record
                    await anyio.to_thread.run_sync(trail.record, event)
