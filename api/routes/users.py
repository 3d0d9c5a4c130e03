"""People and their credentials, managed by the security administrator (R10.2.3).

Only `user_manage` (the security administrator) may call these; each call is an
audit record (110137 User Security Attributes Changed) through the audit
middleware, with the username as its object. Passwords set here must be changed
at first login; disabling a person or resetting a password ends their sessions.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from api.deps import SessionDep, get_clock, require
from api.errors import ErrorBody
from core.config import get_settings
from domain.enums import Role
from domain.security_tables import UserCredential
from domain.tables import User
from security import accounts, sessions, totp
from security.passwords import PasswordRejected
from security.permissions import Permission
from security.clock import aware
from security.policy import SecurityPolicy
from services.errors import Conflict, Invalid, NotFound

router = APIRouter(prefix="/api/v1/users", tags=["users"])

SecurityAdmin = Annotated[User, Depends(require(Permission.user_manage))]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    username: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    department_id: str | None = Field(None, max_length=64)


class UserPublic(BaseModel):
    id: str
    username: str
    display_name: str
    role: str
    department_id: str | None
    active: bool
    has_password: bool
    totp_enrolled: bool
    locked: bool


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_password: str = Field(min_length=1, max_length=1000)


class TotpEnrolment(BaseModel):
    otpauth_uri: str = Field(description="Show once as a QR code to the person; it is not stored in clear")


def _public(db: Session, user: User, request: Request) -> UserPublic:
    cred = db.get(UserCredential, user.id)
    now = get_clock(request).now()
    locked = bool(cred and cred.locked_until and aware(cred.locked_until) > now)
    return UserPublic(id=user.id, username=user.username, display_name=user.display_name, role=user.role,
                      department_id=user.department_id, active=user.active, has_password=cred is not None,
                      totp_enrolled=bool(cred and cred.totp_secret_enc), locked=locked)


def _user(db: Session, username: str) -> User:
    user = accounts.user_by_username(db, username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


_REFUSALS: dict[int | str, dict] = {403: {"model": ErrorBody}, 404: {"model": ErrorBody}}


@router.get("", response_model=list[UserPublic])
def list_users(_admin: SecurityAdmin, db: SessionDep, request: Request) -> list[UserPublic]:
    return [_public(db, u, request) for u in db.exec(select(User).order_by(col(User.username))).all()]


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED,
             responses={**_REFUSALS, 409: {"model": ErrorBody}})
def create_user(body: UserIn, _admin: SecurityAdmin, db: SessionDep, request: Request) -> UserPublic:
    try:
        user = accounts.create_user(db, body.username, body.display_name, body.role, body.department_id)
    except accounts.AccountError as err:
        raise Conflict(str(err)) from None
    db.commit()
    return _public(db, user, request)


@router.post("/{username}/password", response_model=UserPublic, responses={**_REFUSALS, 422: {"model": ErrorBody}})
def reset_password(username: str, body: PasswordIn, _admin: SecurityAdmin, db: SessionDep,
                   request: Request) -> UserPublic:
    """A temporary password the person must change at first login; their sessions end."""
    user = _user(db, username)
    clock = get_clock(request)
    try:
        accounts.set_password(db, user, body.new_password, clock, SecurityPolicy.from_settings(get_settings()),
                              must_change=True)
    except (PasswordRejected, accounts.AccountError) as err:
        raise Invalid(f"password refused: {err}") from None
    sessions.end_all_sessions(db, user.id, clock, "password reset")
    db.commit()
    return _public(db, user, request)


@router.post("/{username}/totp", response_model=TotpEnrolment, responses={**_REFUSALS, 422: {"model": ErrorBody}})
def enrol_totp(username: str, _admin: SecurityAdmin, db: SessionDep, request: Request) -> TotpEnrolment:
    user = _user(db, username)
    settings = get_settings()
    try:
        secret = accounts.enrol_totp(db, user, settings.codec_keys, get_clock(request))
    except accounts.AccountError as err:
        raise Invalid(str(err)) from None
    db.commit()
    return TotpEnrolment(otpauth_uri=totp.provisioning_uri(secret, user.username, settings.totp_issuer))


@router.post("/{username}/unlock", response_model=UserPublic, responses=_REFUSALS)
def unlock(username: str, _admin: SecurityAdmin, db: SessionDep, request: Request) -> UserPublic:
    user = _user(db, username)
    cred = db.get(UserCredential, user.id)
    if cred is not None:
        cred.locked_until = None
        db.add(cred)
        db.commit()
    return _public(db, user, request)


@router.post("/{username}/disable", response_model=UserPublic, responses=_REFUSALS)
def disable(username: str, admin: SecurityAdmin, db: SessionDep, request: Request) -> UserPublic:
    """The account stays (its name is in the history and audit trail) but no longer authenticates."""
    user = _user(db, username)
    if user.id == admin.id:
        raise Conflict("a security administrator cannot disable their own account")
    user.active = False
    db.add(user)
    sessions.end_all_sessions(db, user.id, get_clock(request), "user disabled")
    db.commit()
    return _public(db, user, request)
