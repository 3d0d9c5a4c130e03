"""Identifier fields at rest (R10.2.2, R10.3.3): sealed with AES-256-GCM, matched through blind indexes.

ID card, insurance and other identifier numbers and phone numbers are sealed
(`<key id>:base64(nonce | ciphertext+tag)`, the column and identifier domain bound
in as associated data, so a sealed value cannot be moved to another column or
domain) and indexed with HMAC-SHA256 under a separate key over a normalised form.
Lookups ask for the index, never for the number: equal numbers give equal
indexes, and the index alone neither reveals the number nor can be recomputed
without the key.

Keys: RADLOOP_FIELD_KEYS (key_id:base64, the first seals; older ones still open)
and RADLOOP_BLIND_INDEX_KEY (one key: changing it means re-indexing every row,
`python -m security.field_crypto reindex`).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.codec import parse_keys
from core.config import get_settings


def _index_key() -> bytes:
    return base64.b64decode(get_settings().blind_index_key)


def seal(value: str, context: str, keys_spec: str | None = None) -> str:
    keys = parse_keys(keys_spec or get_settings().field_keys)
    kid = next(iter(keys))
    nonce = os.urandom(12)
    sealed = AESGCM(keys[kid]).encrypt(nonce, value.encode("utf-8"), context.encode("utf-8"))
    return f"{kid}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def unseal(stored: str, context: str, keys_spec: str | None = None) -> str:
    """The clear value; raises (InvalidTag) when the sealed text, its key or its context do not match."""
    kid, _, b64 = stored.partition(":")
    key = parse_keys(keys_spec or get_settings().field_keys).get(kid)
    if key is None:
        raise ValueError(f"field sealed with unknown key {kid!r}")
    raw = base64.b64decode(b64)
    return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode("utf-8")).decode("utf-8")


def normalise_identifier(value: str) -> str:
    """Spaces and dashes are typing noise; the check character X of an ID card is one letter in any case."""
    return re.sub(r"[\s\-]", "", value).upper()


def normalise_phone(phone: str) -> str:
    """The same number however it was written (+86, spaces, dashes): its last 11 digits (domain.empi)."""
    digits = re.sub(r"\D", "", phone)
    return digits[-11:] if len(digits) >= 7 else ""


def _index(kind: str, normalised: str) -> str:
    return hmac.new(_index_key(), f"{kind}|{normalised}".encode("utf-8"), hashlib.sha256).hexdigest()


def identifier_index(system: str, value: str) -> str:
    """Blind index of an identifier in its domain (the domain is part of it: equal numbers in two domains differ)."""
    return _index(f"id:{system.strip().upper()}", normalise_identifier(value))


def phone_index(phone: str | None) -> str | None:
    norm = normalise_phone(phone or "")
    return _index("phone", norm) if norm else None


def identifier_context(system: str) -> str:
    return f"patient_identifier.value|{system.strip().upper()}"


PHONE_CONTEXT = "patient.phone"


# ---- keeping the sealed and index columns in step with the values -------------------------------


def _seal_identifier(_mapper: Any, _conn: Any, row: Any) -> None:
    if row.value is not None:
        row.value_enc = seal(row.value, identifier_context(row.system))
        row.value_bidx = identifier_index(row.system, row.value)


def _seal_phone(_mapper: Any, _conn: Any, row: Any) -> None:
    if row.phone:
        row.phone_enc, row.phone_bidx = seal(row.phone, PHONE_CONTEXT), phone_index(row.phone)
    else:
        row.phone_enc = row.phone_bidx = None


def install(patient_cls: type, identifier_cls: type) -> None:
    """Every insert or update of a patient or identifier row, from any edge, seals and indexes it."""
    from sqlalchemy import event

    for name in ("before_insert", "before_update"):
        event.listen(identifier_cls, name, _seal_identifier)
        event.listen(patient_cls, name, _seal_phone)


def reindex(session: Any) -> int:
    """Re-seal and re-index every row (after a key change, or rows written before the columns existed)."""
    from sqlmodel import select

    from domain.tables import Patient, PatientIdentifier

    n = 0
    for row in session.exec(select(PatientIdentifier)).all():
        _seal_identifier(None, None, row)
        session.add(row)
        n += 1
    for row in session.exec(select(Patient)).all():
        _seal_phone(None, None, row)
        session.add(row)
        n += 1
    session.commit()
    return n


if __name__ == "__main__":
    import sys

    from sqlmodel import Session

    from core.db import get_engine

    if sys.argv[1:] != ["reindex"]:
        sys.exit("usage: python -m security.field_crypto reindex")
    with Session(get_engine()) as s:
        print(f"re-sealed and re-indexed {reindex(s)} rows")
