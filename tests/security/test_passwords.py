"""Password policy (R10.2.3): complexity, no reuse, expiry; argon2id hashes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from domain.enums import Role
from security import accounts, passwords
from security.passwords import PasswordRejected
from security.policy import SecurityPolicy


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Sh0rt!", "at least 12 characters"),
        ("alllowercaseletters", "at least 3 of"),
        ("lowercase-and-symbols", "at least 3 of"),
        ("Li.Na-Password-2026", "must not contain the username"),
    ],
)
def test_policy_names_the_rule_broken(password: str, reason: str) -> None:
    found = passwords.policy_violations(password, "li.na", 12)
    assert any(reason in r for r in found), found


@pytest.mark.parametrize("password", ["Corr3ct-Horse-Battery", "correct horse 2026!", "影像科密码abcdef12"])
def test_good_passwords_pass(password: str) -> None:
    assert passwords.policy_violations(password, "li.na", 12) == []


def test_every_reason_at_once() -> None:
    assert len(passwords.policy_violations("li.na", "li.na", 12)) == 3


def test_argon2id_hash_verifies_only_the_right_password() -> None:
    h = passwords.hash_password("Corr3ct-Horse-Battery")
    assert h.startswith("$argon2id$")
    assert passwords.verify_password(h, "Corr3ct-Horse-Battery")
    assert not passwords.verify_password(h, "corr3ct-horse-battery")
    assert not passwords.verify_password(None, "Corr3ct-Horse-Battery")
    assert not passwords.verify_password("not-a-hash", "Corr3ct-Horse-Battery")


def test_recent_passwords_cannot_come_back(db, clock) -> None:
    policy = SecurityPolicy(password_history=3)
    user = accounts.create_user(db, "wang.wu", "Wang Wu", Role.nurse, None)
    sequence = ["First-Passw0rd!", "Second-Passw0rd!", "Third-Passw0rd!"]
    for pw in sequence:
        accounts.set_password(db, user, pw, clock, policy)
    for pw in sequence:  # the current one and the two before it
        with pytest.raises(PasswordRejected, match="recent passwords"):
            accounts.set_password(db, user, pw, clock, policy)
    accounts.set_password(db, user, "Fourth-Passw0rd!", clock, policy)
    accounts.set_password(db, user, "First-Passw0rd!", clock, policy)  # three changes later it is allowed again


def test_machine_accounts_get_no_password(db, clock) -> None:
    user = accounts.create_user(db, "his2", "HIS 2", Role.his_system, None)
    with pytest.raises(accounts.AccountError, match="machine account"):
        accounts.set_password(db, user, "Corr3ct-Horse-Battery", clock, SecurityPolicy())


def test_expiry() -> None:
    changed = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert not passwords.is_expired(changed, changed + timedelta(days=90), 90)
    assert passwords.is_expired(changed, changed + timedelta(days=90, seconds=1), 90)
