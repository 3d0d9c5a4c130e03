"""People with both factors, set up as the security administrator would (security tests, API tests)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from core.config import get_settings
from domain.enums import Role
from security import accounts
from security.clock import Clock
from security.policy import SecurityPolicy

PASSWORD = "Corr3ct-Horse-Battery"


@dataclass
class Person:
    username: str
    password: str
    totp_secret: str
    role: str


def enrol(db: Session, clock: Clock, username: str, role: Role, password: str = PASSWORD) -> Person:
    """Account (created if missing), password under the policy, TOTP secret; committed."""
    user = accounts.user_by_username(db, username) or accounts.create_user(db, username, username.title(), role, None)
    accounts.set_password(db, user, password, clock, SecurityPolicy())
    secret = accounts.enrol_totp(db, user, get_settings().codec_keys, clock)
    db.commit()
    return Person(username=username, password=password, totp_secret=secret, role=role.value)
