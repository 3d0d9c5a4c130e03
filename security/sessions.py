"""Interactive login and server-side sessions (R10.2.3): two factors, lockout, idle timeout, logout.

A session token is 32 random bytes the client holds; the table keeps only its
SHA-256, so a copied table opens no session. Every authenticated request
touches the session; one unused for the idle timeout, or older than the
maximum age, is ended server-side and refused. Five failed logins within five
minutes lock the account for fifteen (numbers from SecurityPolicy). Time comes
from an injected Clock so tests move it instead of sleeping.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.security_tables import LoginAttempt, UserCredential, UserSession
from domain.tables import User
from security import passwords, totp
from security.clock import Clock, aware
from security.policy import MACHINE_ROLES, SecurityPolicy

TOKEN_PREFIX = "rls_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_session_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


class LoginRefused(Exception):
    """Login did not succeed. `public` is what the caller is told; `reason` goes to the audit trail only."""

    status_code = 401

    def __init__(self, reason: str, public: str = "invalid username, password or code") -> None:
        super().__init__(reason)
        self.reason, self.public = reason, public


class AccountLocked(LoginRefused):
    status_code = 423

    def __init__(self, until: datetime) -> None:
        super().__init__("account locked", f"too many failed logins: account locked until {until.isoformat()}")
        self.until = until


class PasswordChangeRequired(LoginRefused):
    status_code = 403

    def __init__(self, why: str) -> None:
        super().__init__(why, f"{why}: change it (POST /api/v1/auth/password) before logging in")


class SessionRefused(Exception):
    """The token names no live session (unknown, logged out, idle, too old, user disabled)."""


@dataclass(frozen=True)
class LoggedIn:
    token: str
    user: User
    session: UserSession


# ---- lockout --------------------------------------------------------------------------------


def _record_attempt(db: Session, username: str, now: datetime, success: bool, reason: str, source: str) -> None:
    db.add(LoginAttempt(username=username, at=now, success=success, reason=reason, source=source))
    db.flush()


def _recent_failures(db: Session, username: str, now: datetime, policy: SecurityPolicy) -> int:
    """Failures that count towards the lock: in the window, and after the last success (by insertion order)."""
    last_ok_id = db.exec(
        select(func.max(LoginAttempt.id)).where(LoginAttempt.username == username, LoginAttempt.success == True)  # noqa: E712
    ).one()
    return db.exec(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username,
            LoginAttempt.success == False,  # noqa: E712
            col(LoginAttempt.reason).not_in(["account locked", "password expired", "password change required"]),
            col(LoginAttempt.at) > now - policy.failure_window,
            col(LoginAttempt.id) > (last_ok_id or 0),
        )
    ).one()


def _fail(db: Session, username: str, cred: UserCredential | None, now: datetime, reason: str, source: str,
          policy: SecurityPolicy) -> LoginRefused:
    _record_attempt(db, username, now, False, reason, source)
    if cred is not None and _recent_failures(db, username, now, policy) >= policy.max_failures:
        cred.locked_until = now + policy.lockout
        db.add(cred)
        db.flush()
    return LoginRefused(reason)


# ---- login, sessions ------------------------------------------------------------------------


def check_credentials(db: Session, username: str, password: str, code: str, now: datetime, source: str,
                      policy: SecurityPolicy, codec_keys: str) -> tuple[User, UserCredential]:
    """Both factors, or a LoginRefused; records the attempt and locks after too many failures.

    The caller commits even on refusal (the attempt and the lock must persist).
    """
    user = db.exec(select(User).where(User.username == username, User.active == True)).first()  # noqa: E712
    cred = db.get(UserCredential, user.id) if user else None
    if cred is not None and cred.locked_until is not None and aware(cred.locked_until) > now:
        _record_attempt(db, username, now, False, "account locked", source)
        raise AccountLocked(aware(cred.locked_until))
    password_ok = passwords.verify_password(cred.password_hash if cred else None, password)
    if user is None or cred is None:
        raise _fail(db, username, None, now, "unknown user or no credentials", source, policy)
    if user.role in MACHINE_ROLES:
        raise _fail(db, username, cred, now, "machine account: no interactive login", source, policy)
    if not password_ok:
        raise _fail(db, username, cred, now, "wrong password", source, policy)
    if cred.totp_secret_enc is None:
        raise _fail(db, username, cred, now, "no second factor enrolled", source, policy)
    step = totp.matching_step(totp.decrypt_secret(cred.totp_secret_enc, codec_keys), code, now, cred.totp_last_step)
    if step is None:
        raise _fail(db, username, cred, now, "wrong or reused TOTP code", source, policy)
    cred.totp_last_step = step
    db.add(cred)
    if cred.must_change_password:
        _record_attempt(db, username, now, False, "password change required", source)
        raise PasswordChangeRequired("password change required")
    if passwords.is_expired(aware(cred.password_changed_at), now, policy.password_max_age.days):
        _record_attempt(db, username, now, False, "password expired", source)
        raise PasswordChangeRequired("password expired")
    return user, cred


def _end(row: UserSession, now: datetime, reason: str) -> None:
    row.ended_at, row.end_reason = now, reason


def active_sessions(db: Session, user_id: str) -> list[UserSession]:
    return list(db.exec(
        select(UserSession).where(UserSession.user_id == user_id, col(UserSession.ended_at).is_(None))
        .order_by(col(UserSession.created_at))
    ).all())


def open_session(db: Session, user: User, now: datetime, source: str, policy: SecurityPolicy) -> LoggedIn:
    """A new session; the oldest live ones beyond the role's concurrent limit end ('superseded')."""
    live = active_sessions(db, user.id)
    excess = len(live) + 1 - policy.sessions_allowed(user.role)
    for row in live[: max(excess, 0)]:
        _end(row, now, "superseded")
        db.add(row)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = UserSession(token_sha256=token_hash(token), user_id=user.id, created_at=now, last_seen_at=now, source=source)
    db.add(row)
    db.flush()
    return LoggedIn(token=token, user=user, session=row)


def login(db: Session, username: str, password: str, code: str, clock: Clock, source: str,
          policy: SecurityPolicy, codec_keys: str) -> LoggedIn:
    now = clock.now()
    user, _cred = check_credentials(db, username, password, code, now, source, policy, codec_keys)
    _record_attempt(db, username, now, True, "", source)
    return open_session(db, user, now, source, policy)


def authenticate(db: Session, token: str, clock: Clock, policy: SecurityPolicy) -> tuple[User, UserSession]:
    """The live session's user, touching it; ends and refuses an idle, too old or orphaned session.

    The caller commits either way (the touch, or the ending).
    """
    row = db.get(UserSession, token_hash(token))
    if row is None:
        raise SessionRefused("unknown session")
    if row.ended_at is not None:
        raise SessionRefused(f"session ended ({row.end_reason})")
    now = clock.now()
    user = db.get(User, row.user_id)
    reason = None
    if now - aware(row.last_seen_at) > policy.idle_timeout:
        reason = "idle"
    elif now - aware(row.created_at) > policy.max_session_age:
        reason = "expired"
    elif user is None or not user.active:
        reason = "user disabled"
    if reason is not None:
        _end(row, now, reason)
        db.add(row)
        db.flush()
        raise SessionRefused(f"session ended ({reason})")
    row.last_seen_at = now
    db.add(row)
    db.flush()
    assert user is not None
    return user, row


def logout(db: Session, token: str, clock: Clock) -> bool:
    """End the session server-side; False when it was not live."""
    row = db.get(UserSession, token_hash(token))
    if row is None or row.ended_at is not None:
        return False
    _end(row, clock.now(), "logout")
    db.add(row)
    db.flush()
    return True


def end_all_sessions(db: Session, user_id: str, clock: Clock, reason: str) -> int:
    """Used when a password changes or an account is disabled."""
    rows = active_sessions(db, user_id)
    for row in rows:
        _end(row, clock.now(), reason)
        db.add(row)
    db.flush()
    return len(rows)
