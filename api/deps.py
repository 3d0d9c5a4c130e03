"""Typed dependencies so routes read like the business they serve.

Who is calling (`CurrentUser`, and what they may do: `require(Permission.X)`), the database (`SessionDep`) and
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
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.routing import APIRoute
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
from security import need_to_know, sessions
from security.clock import Clock, SystemClock
from security.permissions import Permission, allows
from security.policy import MACHINE_ROLES, SecurityPolicy

DEV_TOKEN_PREFIX = "dev-"

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

SESSION_COOKIE = "radloop_session"

_bearer = HTTPBearer(
    auto_error=False,
    description="`Bearer <session token>` from POST /api/v1/auth/login, a machine client's API token, "
    "or (development only) `dev-<username>`",
)


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


def get_clock(request: Request) -> Clock:
    return getattr(request.app.state, "clock", None) or SystemClock()


def _session_user(token: str, clock: Clock) -> User:
    policy = SecurityPolicy.from_settings(get_settings())
    with session_scope() as session:
        try:
            user, _row = sessions.authenticate(session, token, clock, policy)
        except sessions.SessionRefused as refused:
            session.commit()  # an idle or expired session stays ended
            raise _unauthorized(str(refused)) from None
        return user


def _api_token_user(token: str, settings: Settings) -> User:
    """API tokens: machine clients (HIS) always; people only with development tokens outside production."""
    if settings.is_production and token.startswith(DEV_TOKEN_PREFIX):
        raise _unauthorized("development tokens are refused in production")
    user = _find_user(token_sha256(token))
    if user is None:
        raise _unauthorized("invalid or inactive token")
    if settings.is_production and user.role not in MACHINE_ROLES:
        raise _unauthorized("people log in with password and code (POST /api/v1/auth/login)")
    return user


def request_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token, else the session cookie (browsers)."""
    if credentials is not None and credentials.scheme.lower() == "bearer" and credentials.credentials:
        return credentials.credentials
    return request.cookies.get(SESSION_COOKIE) or None


def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """Session token (idle timeout enforced, touched per request) or API token -> its active user.

    Only hashes of tokens are stored. The user is left on the request state for the audit trail.
    """
    token = request_token(request, credentials)
    if token is None:
        raise _unauthorized("missing bearer token")
    if sessions.is_session_token(token):
        user = _session_user(token, get_clock(request))
    else:
        user = _api_token_user(token, get_settings())
    request.state.principal = {"user_id": user.id, "username": user.username, "role": user.role}
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]

PUBLIC = "public"


def require(permission: Permission) -> Callable[[User], User]:
    """Dependency factory: the caller's role must hold `permission` (security.permissions); 403 otherwise.

    The returned callable carries `.permission`, which the role x endpoint matrix
    test and the audit middleware read from each route.
    """

    def _check(user: CurrentUser) -> User:
        if not allows(user.role, permission):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {user.role!r} may not do this (needs permission {permission.value})",
            )
        return user

    _check.permission = permission  # type: ignore[attr-defined]
    return _check


def declare_public(why: str) -> Callable[[], None]:
    """Dependency marking a route as deliberately open (health, login); `why` is for the reader."""

    def _public() -> None:
        return None

    _public.permission = PUBLIC  # type: ignore[attr-defined]
    _public.__doc__ = why
    return _public


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute of the app as requests meet it: full path, router-level dependencies included.

    This FastAPI keeps included routers nested (`_IncludedRouter`); its own flattening
    helper is private, so it is used when present and plain `app.routes` otherwise.
    """
    try:
        from fastapi.routing import _iter_included_route_candidates  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - a FastAPI that flattens routes itself
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [r for r in _iter_included_route_candidates(app.routes) if isinstance(r, APIRoute)]


def declared_permissions(route: APIRoute) -> set[str]:
    """Every permission declared on `route`, through any depth of dependencies."""
    found: set[str] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        for dep in dependant.dependencies:
            declared = getattr(dep.call, "permission", None)
            if declared is not None:
                found.add(str(declared))
            stack.append(dep)
    return found


def require_roles(*roles: Role) -> Callable[[User], User]:
    """Dependency factory: the caller must hold one of `roles` (403 with the reason otherwise).

    Superseded by `require(Permission.X)`; routes still using it carry `.roles` so the
    permission matrix test can tell them apart.
    """
    allowed = {Role(r) for r in roles}

    def _check(user: CurrentUser) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"role {user.role!r} may not do this (needs one of: {names})"
            )
        return user

    _check.roles = frozenset(allowed)  # type: ignore[attr-defined]
    return _check


def _access_basis(accession: str, user: User, clock: Clock) -> str | None:
    with session_scope() as session:
        return need_to_know.access_basis(session, user, accession, clock.now())


def patient_scope(accession: str, request: Request, user: CurrentUser) -> None:
    """Route dependency for `{accession}` routes: a clinician outside their patients needs break-glass (403).

    The basis of access is left on the request state; the audit record carries it,
    so reads under break-glass are flagged for review.
    """
    if user.role not in need_to_know.SCOPED_ROLES:
        request.state.access_basis = "role"
        return
    basis = _access_basis(accession, user, get_clock(request))
    if basis is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"exam {accession} is not one of your department's patients; "
            "to see it in an emergency, break the glass (POST /api/v1/break-glass) with a reason",
        )
    request.state.access_basis = basis


def _refuse_outside(what: str, basis: str | None, request: Request, glass_for: str) -> None:
    if basis is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"{what} is not one of your department's patients; to see it in an emergency, "
            f"break the glass (POST /api/v1/break-glass with {glass_for}) with a reason",
        )
    request.state.access_basis = basis


def _check_scope(request: Request, user: User, basis_of: Callable[..., str | None], key: str, what: str,
                 glass_for: str) -> None:
    """Need to know one level up from an exam: `basis_of(session, user, key, now)` says why, or None (403)."""
    if user.role not in need_to_know.SCOPED_ROLES:
        request.state.access_basis = "role"
        return
    now = get_clock(request).now()
    with session_scope() as session:
        basis = basis_of(session, user, key, now)
    _refuse_outside(what, basis, request, glass_for)


def check_patient_access(patient_id: str, request: Request, user: User) -> None:
    """Need to know for records kept per patient (consents): as `patient_scope`, one level up (403)."""
    _check_scope(request, user, need_to_know.patient_access_basis, patient_id, f"patient {patient_id}",
                 "the patient_id or one of their accession numbers")


def patient_record_scope(patient_id: str, request: Request, user: CurrentUser) -> None:
    """Route dependency for `{patient_id}` routes (see check_patient_access)."""
    check_patient_access(patient_id, request, user)


def check_study_access(study: str, request: Request, user: User) -> None:
    """Need to know for images: those of the study's order (403 outside it, or with no order linked)."""
    _check_scope(request, user, need_to_know.study_access_basis, study, f"study {study}",
                 "the study's accession number")


def study_scope(study: str, request: Request, user: CurrentUser) -> None:
    """Route dependency for `{study}` routes (see check_study_access)."""
    check_study_access(study, request, user)


def actor_of(user: User) -> Actor:
    """The loop's view of a person: set from the authenticated user, never from the request body."""
    return Actor(user_id=user.id, role=Role(user.role), name=user.display_name)
