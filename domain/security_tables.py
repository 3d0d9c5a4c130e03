"""Security tables (R10.2.3, R10.5): credentials, sessions, login attempts, the audit chain.

Credentials live beside `app_user` (keyed by its id) rather than in it, so the
user directory stays what the loops read and secrets stay where only the
security code looks. Audit timestamps are stored as fixed-width ISO-8601 UTC text
(`YYYY-MM-DDTHH:MM:SS.ffffffZ`): that exact text is what the SM3 chain hashes, and
text survives every database round trip unchanged (a tz-less TIMESTAMP would not).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from security.audit_guard import install_append_only


def _aware() -> Any:
    """A timezone-aware timestamp column: lockout and idle timeouts compare instants."""
    return DateTime(timezone=True)


class UserCredential(SQLModel, table=True):
    """A person's password (argon2id) and second factor (TOTP secret, encrypted at rest)."""

    __tablename__ = "user_credential"
    user_id: str = Field(primary_key=True, foreign_key="app_user.id")
    password_hash: str
    password_changed_at: datetime = Field(sa_type=_aware())
    password_history: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False),
        description="Earlier argon2 hashes, newest first; a new password may not repeat them",
    )
    must_change_password: bool = False
    totp_secret_enc: str | None = Field(default=None, description="AES-256-GCM(base32 secret), base64, key id prefixed")
    totp_enrolled_at: datetime | None = Field(default=None, sa_type=_aware())
    totp_last_step: int | None = Field(default=None, description="Last accepted TOTP time step: no code is used twice")
    locked_until: datetime | None = Field(default=None, sa_type=_aware())


class UserSession(SQLModel, table=True):
    """A server-side login session; the client holds only the random token, we keep its SHA-256."""

    __tablename__ = "user_session"
    token_sha256: str = Field(primary_key=True)
    user_id: str = Field(foreign_key="app_user.id", index=True)
    created_at: datetime = Field(sa_type=_aware())
    last_seen_at: datetime = Field(sa_type=_aware())
    ended_at: datetime | None = Field(default=None, sa_type=_aware(), index=True)
    end_reason: str | None = Field(default=None, description="logout | idle | expired | superseded | locked")
    source: str = ""


class LoginAttempt(SQLModel, table=True):
    """Every interactive login attempt, kept to count failures (lockout) and for the audit trail."""

    __tablename__ = "login_attempt"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True)
    at: datetime = Field(sa_type=_aware(), index=True)
    success: bool
    reason: str = ""
    source: str = ""


class AuditRecord(SQLModel, table=True):
    """One audited event, chained: hash = SM3(prev_hash || canonical(record)) (R10.5).

    Append-only: a database trigger refuses UPDATE and DELETE (security.audit_guard).
    """

    __tablename__ = "audit_record"
    seq: int = Field(primary_key=True, description="1, 2, 3 ... in chain order; assigned at insert")
    event_uuid: str = Field(unique=True, description="Set when the event happened; makes spool replay idempotent")
    occurred_at: str = Field(index=True, description="ISO-8601 UTC with microseconds, 'Z'")
    recorded_at: str
    user_id: str | None = Field(default=None, index=True)
    username: str | None = None
    role: str | None = None
    source: str = Field("", description="Client address, or 'cli', 'worker'")
    event_type: str = Field(index=True, description="RadLoop event name, e.g. patient_read, login")
    event_id: str = Field(description="DICOM PS3.15 A.5 EventID code, e.g. 110110 (Patient Record)")
    action: str = Field(description="DICOM EventActionCode: C R U D E")
    object_type: str | None = None
    object_id: str | None = Field(default=None, index=True)
    outcome: str = Field(description="success | failure")
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str
    hash: str = Field(unique=True)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement 'the chain was at seq N with hash H': a truncated tail cannot pass unseen."""

    __tablename__ = "audit_checkpoint"
    __table_args__ = (UniqueConstraint("seq", name="uq_audit_checkpoint_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    seq: int
    hash: str
    created_at: str
    key_id: str
    signature: str = Field(sa_column=Column(Text, nullable=False), description="HMAC-SM3 over seq|hash|created_at")


# `metadata.create_all` (tests, tools) gets the append-only triggers too; migrations
# install them in migrations/env.py.
for _table in (AuditRecord.__table__, AuditCheckpoint.__table__):  # type: ignore[attr-defined]
    event.listen(_table, "after_create", lambda target, connection, **_kw: install_append_only(connection, (target.name,)))
