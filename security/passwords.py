"""Passwords (R10.2.3): argon2id hashes, a complexity rule, expiry and no reuse.

argon2id with the library's RFC 9106 low-memory profile: slow enough to make a
stolen table expensive, fast enough (tens of ms) for a login. The policy is
checked before hashing so the person hears every reason at once.
"""
from __future__ import annotations

import string
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

# Verified when the username is unknown, so "no such user" costs as long as "wrong password".
_DUMMY_HASH = _hasher.hash("radloop-timing-equaliser")

_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
_ALNUM = frozenset(string.ascii_letters + string.digits)


class PasswordRejected(ValueError):
    """The new password breaks the policy; `reasons` lists every rule it breaks."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def policy_violations(password: str, username: str, min_length: int) -> list[str]:
    """Every rule `password` breaks: length, 3 of 4 character classes, not containing the username."""
    reasons = []
    if len(password) < min_length:
        reasons.append(f"at least {min_length} characters")
    classes = sum(any(c in cls for c in password) for cls in _CLASSES)
    # Anything else printable counts as a symbol (punctuation, and also CJK characters).
    classes += any(c not in _ALNUM and not c.isspace() for c in password)
    if classes < 3:
        reasons.append("at least 3 of: lower-case, upper-case, digit, symbol")
    if username and username.lower() in password.lower():
        reasons.append("must not contain the username")
    return reasons


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing hash still costs one argon2 verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def reuses(password: str, previous_hashes: list[str]) -> bool:
    return any(verify_password(h, password) for h in previous_hashes)


def new_password_hash(
    password: str, username: str, current_hash: str | None, history: list[str], min_length: int
) -> str:
    """Check the policy and history, then hash; raises PasswordRejected with every reason."""
    reasons = policy_violations(password, username, min_length)
    if reasons:
        raise PasswordRejected(reasons)
    if reuses(password, [h for h in (current_hash, *history) if h]):
        raise PasswordRejected(["must differ from the recent passwords"])
    return hash_password(password)


def is_expired(changed_at: datetime, now: datetime, max_age_days: int) -> bool:
    return now - changed_at > timedelta(days=max_age_days)
