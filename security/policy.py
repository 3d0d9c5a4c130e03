"""The security numbers in one frozen object, read from settings once and passed down (tests build their own)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.config import Settings
from domain.enums import Role

# One session at a time for the roles that administer the center or read its audit trail.
SINGLE_SESSION_ROLES = frozenset({Role.system_admin, Role.security_admin, Role.auditor})
# Accounts that are programs, not people: they hold API credentials and never log in interactively.
MACHINE_ROLES = frozenset({Role.his_system})


@dataclass(frozen=True)
class SecurityPolicy:
    password_min_length: int = 12
    password_max_age: timedelta = timedelta(days=90)
    password_history: int = 5
    max_failures: int = 5
    failure_window: timedelta = timedelta(minutes=5)
    lockout: timedelta = timedelta(minutes=15)
    idle_timeout: timedelta = timedelta(minutes=30)
    max_session_age: timedelta = timedelta(hours=12)
    max_concurrent_sessions: int = 3
    totp_issuer: str = "RadLoop"

    @classmethod
    def from_settings(cls, s: Settings) -> "SecurityPolicy":
        return cls(
            password_min_length=s.password_min_length,
            password_max_age=timedelta(days=s.password_max_age_days),
            password_history=s.password_history,
            max_failures=s.login_max_failures,
            failure_window=timedelta(seconds=s.login_failure_window_seconds),
            lockout=timedelta(seconds=s.login_lockout_seconds),
            idle_timeout=timedelta(seconds=s.session_idle_timeout_seconds),
            max_session_age=timedelta(seconds=s.session_max_age_seconds),
            max_concurrent_sessions=s.session_max_concurrent,
            totp_issuer=s.totp_issuer,
        )

    def sessions_allowed(self, role: str) -> int:
        return 1 if role in SINGLE_SESSION_ROLES else self.max_concurrent_sessions
