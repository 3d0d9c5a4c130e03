"""The second factor (R10.2.3): RFC 6238 TOTP codes from an authenticator app.

The secret is stored encrypted with the codec key (AES-256-GCM, key id kept
beside it for rotation), so a copied database does not yield working second
factors. A code is accepted once: the accepted time step is remembered and a
code from that step or an earlier one is refused (replay of an observed code).
"""
from __future__ import annotations

import base64
import os
from datetime import datetime

import pyotp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.codec import parse_keys

STEP_SECONDS = 30
VALID_WINDOW = 1  # one step either side: phone clocks drift


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """otpauth:// URI for a QR code in the enrolment screen or CLI."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def encrypt_secret(secret: str, keys_spec: str) -> str:
    keys = parse_keys(keys_spec)
    kid = next(iter(keys))
    nonce = os.urandom(12)
    sealed = AESGCM(keys[kid]).encrypt(nonce, secret.encode("ascii"), b"totp")
    return f"{kid}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def decrypt_secret(stored: str, keys_spec: str) -> str:
    kid, _, b64 = stored.partition(":")
    key = parse_keys(keys_spec).get(kid)
    if key is None:
        raise ValueError(f"TOTP secret sealed with unknown key {kid!r}")
    raw = base64.b64decode(b64)
    return AESGCM(key).decrypt(raw[:12], raw[12:], b"totp").decode("ascii")


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def matching_step(secret: str, code: str, when: datetime, last_step: int | None) -> int | None:
    """The time step `code` belongs to (within the drift window), or None; used steps never match."""
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(when.timestamp()) // STEP_SECONDS
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
