"""Credentials of a person: set a password under the policy, enrol a TOTP second factor.

Used by the CLI (security administrator) and the password-change endpoint; the
caller commits and writes the audit record.
"""
from __future__ import annotations

import uuid

from sqlmodel import Session, select

from domain.enums import Role
from domain.security_tables import UserCredential
from domain.tables import User
from security import passwords, totp
from security.clock import Clock
from security.policy import MACHINE_ROLES, SecurityPolicy


class AccountError(ValueError):
    """The account cannot take this change (unknown, machine account, policy)."""


def user_by_username(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


def set_password(
    session: Session, user: User, new_password: str, clock: Clock, policy: SecurityPolicy, must_change: bool = False
) -> UserCredential:
    """Check policy and history, store the argon2id hash; the previous hash joins the history."""
    if user.role in MACHINE_ROLES:
        raise AccountError(f"{user.username} is a machine account: it uses API credentials, not a password")
    cred = session.get(UserCredential, user.id)
    current = cred.password_hash if cred else None
    history = list(cred.password_history) if cred else []
    new_hash = passwords.new_password_hash(new_password, user.username, current, history, policy.password_min_length)
    if cred is None:
        cred = UserCredential(user_id=user.id, password_hash=new_hash, password_changed_at=clock.now())
    else:
        cred.password_history = ([current] if current else []) + history[: max(policy.password_history - 2, 0)]
        cred.password_hash, cred.password_changed_at = new_hash, clock.now()
    cred.must_change_password = must_change
    session.add(cred)
    session.flush()
    return cred


def enrol_totp(session: Session, user: User, codec_keys: str, clock: Clock) -> str:
    """Give the person a fresh TOTP secret (returned once, to show as QR/URI); replaces any earlier one."""
    cred = session.get(UserCredential, user.id)
    if cred is None:
        raise AccountError(f"{user.username} has no password yet: set one first")
    secret = totp.new_secret()
    cred.totp_secret_enc = totp.encrypt_secret(secret, codec_keys)
    cred.totp_enrolled_at, cred.totp_last_step = clock.now(), None
    session.add(cred)
    session.flush()
    return secret


def create_user(session: Session, username: str, display_name: str, role: Role, department_id: str | None) -> User:
    if user_by_username(session, username) is not None:
        raise AccountError(f"user {username!r} already exists")
    # A random id: ids never reveal or reuse a name (and never look like the seeded demo ids `u-<role>`).
    user = User(id=f"u-{uuid.uuid4().hex[:16]}", username=username, display_name=display_name, role=role.value,
                department_id=department_id, active=True)
    session.add(user)
    session.flush()
    return user
