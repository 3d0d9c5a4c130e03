"""Identifier fields at rest (R10.2.2, R10.3.3): sealed with AES-256-GCM, matched through blind indexes.

Every identifier number and phone is sealed (`<key id>:base64(nonce | ciphertext+tag)`,
the column and identifier domain bound in as associated data, so a sealed value cannot
be moved to another column or domain) and indexed with HMAC-SHA256 under a separate key
over a normalised form. Lookups ask for the index, never for the number: equal numbers
give equal indexes, and the index alone neither reveals the number nor can be recomputed
without the key.

What stays in the clear column (`patient_identifier.value`, `patient.phone`):
- national and personal numbers (SEALED_SYSTEMS: resident ID card, medical insurance,
  passport, HK/Macau and Taiwan permits, foreign residence permit) and every phone keep
  only their masked display form (`1101**********123X`, `138****5678`); the number is
  in `*_enc` alone;
- the center's own record numbers (MRN, MRN:<campus>, hospital card, an HIS's own
  domain) stay clear: they are the DICOM PatientID modalities send back and the key
  HL7 PID-3 routing and MWL matching use, and they identify nobody outside the center.

Writing `value` or `phone` means writing the clear number: the mapper events below seal
and index it and replace it by its display form before the row reaches the database.
A reader that needs the number (HL7 PID-3 to the HIS, the export scrubber, an authorised
EMPI view) asks `clear_identifier` / `clear_phone`; display masking stays role-based
(security.masking).

Keys: RADLOOP_FIELD_KEYS (key_id:base64, the first seals; older ones still open)
and RADLOOP_BLIND_INDEX_KEY (one key: changing it means re-indexing every row,
`python -m security.field_crypto reindex`, which also re-seals under the first field
key and blanks the clear columns of rows written before they were sealed).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import bindparam, event, inspect, select

from core.codec import parse_keys
from core.config import get_settings
from security.masking import PERSONAL_ID_SYSTEMS, is_personal_number, mask_id_number, mask_phone


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


def is_sealed(system: str) -> bool:
    """Whether this domain's numbers are kept sealed only (clear column: display form), see the module doc."""
    return is_personal_number(system)


def personal_number_indexes(value: str) -> list[str]:
    """Blind indexes of `value` read as a number of each personal-number domain, for a key that names no
    domain (a DICOM PatientID): exact matches only, wildcards cannot reach a sealed number."""
    if "*" in value or "?" in value:
        return []
    return [identifier_index(system, value) for system in sorted(PERSONAL_ID_SYSTEMS)]


def display_identifier(system: str, clear: str) -> str:
    """What `patient_identifier.value` holds: the masked number for a sealed domain, else the number."""
    return mask_id_number(clear) if is_sealed(system) else clear


def clear_identifier(row: Any) -> str:
    """The number of a `patient_identifier` row as issued, for a reader entitled to it (the one way in)."""
    if row.value_enc and is_sealed(row.system):
        return unseal(row.value_enc, identifier_context(row.system))
    return row.value  # a record number (clear by design), or a row not sealed yet (reindex seals it)


def clear_phone(patient: Any) -> str | None:
    """The patient's phone number, for a reader entitled to it (notifications, the export scrubber)."""
    return unseal(patient.phone_enc, PHONE_CONTEXT) if patient.phone_enc else patient.phone


# ---- keeping the sealed, index and display columns in step with what was written --------------


def _identifier_columns(system: str, clear: str) -> dict[str, str]:
    """The stored forms of one number: display (clear column), sealed, blind index."""
    return {"value": display_identifier(system, clear), "value_enc": seal(clear, identifier_context(system)),
            "value_bidx": identifier_index(system, clear)}


def _phone_columns(clear: str | None) -> dict[str, str | None]:
    if not clear:
        return {"phone": None, "phone_enc": None, "phone_bidx": None}
    return {"phone": mask_phone(clear), "phone_enc": seal(clear, PHONE_CONTEXT),
            "phone_bidx": phone_index(clear)}


def _seal_identifier(_mapper: Any, _conn: Any, row: Any) -> None:
    attrs = inspect(row).attrs
    if attrs.value.history.has_changes() and row.value is not None:  # a number was written (insert or update)
        clear = row.value
    elif attrs.system.history.deleted and row.value_enc:  # moved to another domain: re-seal under its context
        clear = unseal(row.value_enc, identifier_context(attrs.system.history.deleted[0]))
    else:
        return  # another column changed (a merge moves the row): the stored forms stay as they are
    for key, value in _identifier_columns(row.system, clear).items():
        setattr(row, key, value)


def _seal_phone(_mapper: Any, _conn: Any, row: Any) -> None:
    if inspect(row).attrs.phone.history.has_changes():
        for key, value in _phone_columns(row.phone).items():
            setattr(row, key, value)


def install(patient_cls: type, identifier_cls: type) -> None:
    """Every insert or update of a patient or identifier row, from any edge, seals, indexes and masks it."""
    for name in ("before_insert", "before_update"):
        event.listen(identifier_cls, name, _seal_identifier)
        event.listen(patient_cls, name, _seal_phone)


def reindex(session: Any) -> int:
    """Re-seal, re-index and re-mask every row: after a key change, and for rows written in clear before.

    The clear number is taken from the sealed column when there is one (else from the clear column of a
    row written before sealing); rows are written with plain UPDATEs, which the mapper events above do
    not see (they would take the display form for a new number).
    """
    from domain.tables import Patient, PatientIdentifier

    idents = PatientIdentifier.__table__  # type: ignore[attr-defined]
    patients = Patient.__table__  # type: ignore[attr-defined]
    conn = session.connection()
    ident_rows = [
        {"_id": r.id, **{f"_{k}": v for k, v in _identifier_columns(
            r.system, unseal(r.value_enc, identifier_context(r.system)) if r.value_enc else r.value).items()}}
        for r in conn.execute(select(idents.c.id, idents.c.system, idents.c.value, idents.c.value_enc))]
    phone_rows = [
        {"_id": r.id, **{f"_{k}": v for k, v in _phone_columns(
            unseal(r.phone_enc, PHONE_CONTEXT) if r.phone_enc else r.phone).items()}}
        for r in conn.execute(select(patients.c.id, patients.c.phone, patients.c.phone_enc))]
    if ident_rows:
        conn.execute(idents.update().where(idents.c.id == bindparam("_id")).values(
            {c: bindparam(f"_{c}") for c in ("value", "value_enc", "value_bidx")}), ident_rows)
    if phone_rows:
        conn.execute(patients.update().where(patients.c.id == bindparam("_id")).values(
            {c: bindparam(f"_{c}") for c in ("phone", "phone_enc", "phone_bidx")}), phone_rows)
    message_rows = _reseal_hl7_log(conn)
    session.commit()
    return len(ident_rows) + len(phone_rows) + message_rows


def _reseal_hl7_log(conn: Any) -> int:
    """The HL7 log's raw messages and ACKs under the newest key (rows logged in clear before sealing too)."""
    from domain.hl7_tables import ACK_CONTEXT, RAW_CONTEXT, HL7Message, open_bytes, seal_bytes

    log = HL7Message.__table__  # type: ignore[attr-defined]
    rows = [{"_id": r.id, "_raw": seal_bytes(open_bytes(r.raw, RAW_CONTEXT) or b"", RAW_CONTEXT),
             "_ack_raw": None if r.ack_raw is None else seal_bytes(open_bytes(r.ack_raw, ACK_CONTEXT), ACK_CONTEXT)}
            for r in conn.execute(select(log.c.id, log.c.raw, log.c.ack_raw))]
    if rows:
        conn.execute(log.update().where(log.c.id == bindparam("_id")).values(
            {"raw": bindparam("_raw"), "ack_raw": bindparam("_ack_raw")}), rows)
    return len(rows)


if __name__ == "__main__":
    import sys

    from sqlmodel import Session

    from core.db import get_engine

    if sys.argv[1:] != ["reindex"]:
        sys.exit("usage: python -m security.field_crypto reindex")
    with Session(get_engine()) as s:
        print(f"re-sealed, re-indexed and masked {reindex(s)} rows")
