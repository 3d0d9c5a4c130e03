"""Typed dependencies so routes read like the business they serve.

Who is calling (`CurrentUser`, `require_roles`), the database (`SessionDep`) and
the Temporal client (`TemporalClientDep`). Database work is blocking: sync
dependencies and `def` routes run in FastAPI's thread pool, and async routes
hand their database work to `in_thread`.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select
from temporalio.client import Client

from api.errors import TemporalUnavailable
from core.config import Settings, get_settings
from core.db import session_scope
from core.temporal import connect
from domain.enums import Role
from domain.loop import Actor
from domain.tables import User

T = TypeVar("T")


def _settings() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(_settings)]


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    """Run blocking (database) work off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


# ---- Temporal -----------------------------------------------------------------------


class TemporalConnector:
    """Connects to Temporal once, on first need, and reuses the client.

    A failed attempt is not cached: the API starts while Temporal is down and
    recovers by itself when it comes up, and /health says which it is.
    """

    def __init__(self, client: Client | None = None, timeout_seconds: float = 3.0) -> None:
        self._client = client
        self._timeout = timeout_seconds
        self._lock: asyncio.Lock | None = None
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                settings = get_settings()
                try:
                    self._client = await asyncio.wait_for(connect(settings), self._timeout)
                except (Exception, asyncio.TimeoutError) as err:  # noqa: BLE001 - any failure means "down"
                    self.last_error = str(err) or type(err).__name__
                    raise TemporalUnavailable(
                        f"{settings.resolved_temporal_address}: {self.last_error}"
                    ) from err
                self.last_error = None
        return self._client


def get_connector(request: Request) -> TemporalConnector:
    return request.app.state.temporal


TemporalConnectorDep = Annotated[TemporalConnector, Depends(get_connector)]


async def get_temporal_client(connector: TemporalConnectorDep) -> Client:
    return await connector.get()


TemporalClientDep = Annotated[Client, Depends(get_temporal_client)]


# ---- Who is calling -----------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="`Bearer <api token>`; dev tokens are `dev-<username>`")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"}
    )


def _find_user(token_hash: str) -> User | None:
    with session_scope() as session:
        return session.exec(
            select(User).where(User.api_token_sha256 == token_hash, User.active == True)  # noqa: E712
        ).first()


def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """Bearer token -> its active user; only the token's SHA-256 is stored."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token")
    user = _find_user(token_sha256(credentials.credentials))
    if user is None:
        raise _unauthorized("invalid or inactive token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], User]:
    """Dependency factory: the caller must hold one of `roles` (403 with the reason otherwise)."""
    allowed = {Role(r) for r in roles}

    def _check(user: CurrentUser) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"role {user.role!r} may not do this (needs one of: {names})"
            )
        return user

    return _check


def actor_of(user: User) -> Actor:
    """The loop's view of a person: set from the authenticated user, never from the request body."""
    return Actor(user_id=user.id, role=Role(user.role), name=user.display_name)
