"""Every endpoint declares its permission, and no role gets past a permission it does not hold
(R10.2.3 least privilege, R7.1.5). Walks `app.routes`, so a new route is checked the day it appears.

For each route and each role the request carries that role's credentials and a
throw-away path and body: a role without the permission must get 403 (never a 2xx,
never a 404 that would reveal what exists), a role with it must get past the check
(anything but 401/403; with no data behind it that is typically 404, 422 or 503).
"""
from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from api.deps import PUBLIC, api_routes, declared_permissions
from api.main import create_app
from domain.enums import Role
from security.permissions import ADMINS, AUDITED, ROLE_PERMISSIONS, Permission, permissions_of

# Routes open by design, and why.
PUBLIC_ROUTES = {
    ("POST", "/api/v1/auth/login"),  # the credentials are the check
    ("POST", "/api/v1/auth/password"),  # both factors are the check
    ("GET", "/health"),  # probes; names components, holds no data
    ("GET", "/api/v1/dev/notifications"),  # development sink, not mounted in production
    ("POST", "/api/v1/dev/notifications"),
    ("GET", "/web/login"),  # the login page (web/pages/auth.py): the credentials are the check
    ("POST", "/web/login"),
}


def _routes() -> list[APIRoute]:
    return api_routes(create_app())


def _endpoints() -> list[tuple[str, APIRoute]]:
    return [(m, r) for r in _routes() for m in sorted(r.methods)]


def test_every_route_declares_exactly_one_permission() -> None:
    undeclared, several = [], []
    for method, route in _endpoints():
        found = declared_permissions(route)
        if not found:
            undeclared.append(f"{method} {route.path}")
        if len(found) > 1:
            several.append(f"{method} {route.path}: {sorted(found)}")
    assert undeclared == [], f"routes without require(Permission.X) or declare_public(...): {undeclared}"
    assert several == []


def test_public_routes_are_exactly_the_known_ones() -> None:
    public = {(m, r.path) for m, r in _endpoints() if PUBLIC in declared_permissions(r)}
    assert public == PUBLIC_ROUTES


def _expected_roles(route: APIRoute) -> frozenset[Role]:
    found = declared_permissions(route)
    if found:
        (perm,) = found
        return ROLE_PERMISSIONS[Permission(perm)]
    legacy = [getattr(d.call, "roles", None) for d in route.dependant.dependencies]
    roles = [r for r in legacy if r]
    return roles[0] if roles else frozenset(Role)  # CurrentUser only: any authenticated role


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "X-MATRIX-1", path).replace(":path", "")


def _matrix_cases() -> list[tuple[str, str, APIRoute]]:
    return [(m, r.path, r) for m, r in _endpoints() if PUBLIC not in declared_permissions(r)]


@pytest.mark.parametrize(("method", "path", "route"), _matrix_cases(), ids=[f"{m} {p}" for m, p, _ in _matrix_cases()])
async def test_role_endpoint_matrix(api, auth, method, path, route) -> None:
    url = _concrete(path)
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    anonymous = await api.request(method, url, json=body)
    assert anonymous.status_code == 401, f"{method} {path} without credentials: {anonymous.status_code}"
    allowed = _expected_roles(route)
    wrong = []
    for role in Role:
        r = await api.request(method, url, json=body, headers=auth(role))
        if role in allowed:
            if r.status_code in (401, 403):
                wrong.append(f"{role.value}: refused ({r.status_code}) but holds the permission")
        elif r.status_code != 403:
            wrong.append(f"{role.value}: {r.status_code} without the permission")
    assert wrong == [], f"{method} {path}: {wrong}"


def test_admin_roles_are_separated() -> None:
    """System admin, security admin and auditor share nothing beyond their own session and what
    carries no patient data (form schemas, masked queue boards)."""
    baseline = {Permission.session_self, Permission.form_schema_read, Permission.queue_board_read}
    admins = sorted(ADMINS)
    for i, a in enumerate(admins):
        for b in admins[i + 1:]:
            assert permissions_of(a) & permissions_of(b) <= baseline, (a, b)
    assert {p for p, roles in ROLE_PERMISSIONS.items() if Role.security_admin in roles} == baseline | {
        Permission.user_manage}
    assert ROLE_PERMISSIONS[Permission.audit_read] == {Role.auditor}


def test_administrators_read_no_clinical_records() -> None:
    patient_data = {p for p, kind in AUDITED.items() if kind.event_id in {"110110", "110112", "110103", "110104"}}
    assert Permission.payload_decode in patient_data and Permission.order_read in patient_data
    for admin in (Role.system_admin, Role.security_admin):
        assert permissions_of(admin) & patient_data == set(), admin


def test_the_machine_client_only_places_and_reads_orders_and_books() -> None:
    assert permissions_of(Role.his_system) == {
        Permission.order_place, Permission.order_read, Permission.appointment_book, Permission.session_self,
        Permission.queue_board_read}  # display screens and kiosks are machine clients


def test_booking_permission_matches_the_booking_channels() -> None:
    """Who may book is who speaks for a channel: the two lists must not drift apart."""
    from api.routes.appointments import ROLE_CHANNELS

    assert ROLE_PERMISSIONS[Permission.appointment_book] == frozenset(ROLE_CHANNELS)
