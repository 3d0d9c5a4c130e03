"""The second factor: RFC 6238 codes, one step of drift either way, each code usable once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyotp
import pytest
from cryptography.exceptions import InvalidTag

from security import totp

T0 = datetime(2026, 3, 2, 8, 0, 10, tzinfo=timezone.utc)
KEY_A = "a:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
KEY_B = "b:" + "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="


def test_current_and_adjacent_codes_match_far_ones_do_not() -> None:
    secret = totp.new_secret()
    step = int(T0.timestamp()) // 30
    assert totp.matching_step(secret, totp.code_at(secret, T0), T0, None) == step
    assert totp.matching_step(secret, totp.code_at(secret, T0 - timedelta(seconds=30)), T0, None) == step - 1
    assert totp.matching_step(secret, totp.code_at(secret, T0 + timedelta(seconds=30)), T0, None) == step + 1
    assert totp.matching_step(secret, totp.code_at(secret, T0 - timedelta(seconds=90)), T0, None) is None


def test_a_used_step_and_earlier_ones_never_match_again() -> None:
    secret = totp.new_secret()
    code = totp.code_at(secret, T0)
    step = totp.matching_step(secret, code, T0, None)
    assert totp.matching_step(secret, code, T0, step) is None
    earlier = totp.code_at(secret, T0 - timedelta(seconds=30))
    assert totp.matching_step(secret, earlier, T0, step) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 456"])
def test_malformed_codes_never_match(code: str) -> None:
    assert totp.matching_step(totp.new_secret(), code, T0, None) is None


def test_codes_agree_with_a_standard_authenticator() -> None:
    secret = totp.new_secret()
    assert totp.code_at(secret, T0) == pyotp.TOTP(secret).at(T0)
    uri = totp.provisioning_uri(secret, "li.na", "RadLoop")
    assert uri.startswith("otpauth://totp/RadLoop:li.na?") and f"secret={secret}" in uri


def test_secret_is_sealed_at_rest_and_needs_its_key() -> None:
    secret = totp.new_secret()
    sealed = totp.encrypt_secret(secret, KEY_A)
    assert secret not in sealed and sealed.startswith("a:")
    assert totp.decrypt_secret(sealed, f"{KEY_B},{KEY_A}") == secret  # rotated: old key still listed
    with pytest.raises(ValueError, match="unknown key"):
        totp.decrypt_secret(sealed, KEY_B)
    with pytest.raises(InvalidTag):
        totp.decrypt_secret(sealed, "a:" + KEY_B.split(":")[1])
