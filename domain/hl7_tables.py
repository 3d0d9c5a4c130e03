"""The HL7 message log: every inbound and outbound message, its ACK and its timing.

One row per message received or sent (a resend is its own row, pointing at the
first receipt), so operators can answer "did we get it, what did we say, how
long did it take" by control ID, patient or accession number. The first receipt
of a (sender, MSH-10) holds `dedup_key`: the unique key that makes a resend
replay the stored ACK instead of acting twice.

Confidentiality at rest (R10.2.2, R10.3.3): a message carries ID card, insurance and phone
numbers, so `raw` and `ack_raw` hold only their sealed form (security.field_crypto, AES-GCM
under the field keys, column bound in as context). Writers assign the bytes as sent; the
mapper events below seal them on flush. `clear_raw` / `clear_ack` are the one way to read
them back. The patient summary column keeps a personal number in its masked display form
and matches it through `patient_identifier_bidx`; record numbers (MRN) stay clear.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, Text, event, inspect
from sqlmodel import Field, SQLModel

from domain.tables import utcnow
from security.field_crypto import seal, unseal


class HL7Message(SQLModel, table=True):
    __tablename__ = "hl7_message"
    id: str = Field(primary_key=True, description="UUID4")
    direction: str = Field(index=True, description="inbound | outbound")
    dedup_key: str | None = Field(
        default=None, unique=True,
        description="sending app|facility|MSH-10 on the first inbound receipt; NULL on resends "
        "and after a transient refusal (so the resend is processed)",
    )
    duplicate_of: str | None = Field(default=None, index=True)
    control_id: str = Field(default="", index=True)
    message_type: str = Field(default="", index=True, description="e.g. ORM^O01")
    version: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    charset: str = ""
    peer: str = ""
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False),
                       description="As received (head only if oversized), sealed: read with clear_raw")
    raw_size: int = 0
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    patient_id: str | None = Field(default=None, index=True)
    patient_identifier: str | None = Field(
        default=None, index=True, description="First PID-3: a record number in clear, a personal number masked")
    patient_identifier_bidx: str | None = Field(
        default=None, index=True, description="Blind index of a personal-number first PID-3 (field_crypto)")
    accession_number: str | None = Field(default=None, index=True)
    placer_order_number: str | None = Field(default=None, index=True)
    status: str = Field(default="received", index=True,
                        description="inbound: processed | error | rejected | duplicate; "
                        "outbound: queued | pending | delivered | error | not_sent")
    ack_code: str | None = Field(default=None, description="AA/AE/AR or CA/CE/CR")
    ack_raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary), description="Sealed: read with clear_ack")
    application_ack_code: str | None = Field(
        default=None, description="Enhanced mode: the application ack MSH-16 asked for (delivery is outbound's)")
    error: str | None = Field(default=None, sa_column=Column(Text))
    received_at: datetime = Field(default_factory=utcnow, index=True)
    acked_at: datetime | None = None
    processing_ms: float | None = None
    attempts: int = Field(default=0, description="Outbound: delivery attempts so far")


# ---- the raw message and ACK at rest (security.field_crypto) ------------------------------------

RAW_CONTEXT = "hl7_message.raw"
ACK_CONTEXT = "hl7_message.ack_raw"
_SEALED = re.compile(rb"[A-Za-z0-9_.\-]+:[A-Za-z0-9+/]+=*")


def seal_bytes(raw: bytes, context: str) -> bytes:
    """Latin-1 maps each byte to one character, so a message in any charset comes back byte for byte."""
    return seal(raw.decode("latin-1"), context).encode("ascii")


def open_bytes(stored: bytes | None, context: str) -> bytes | None:
    """The bytes as sent; a row written before sealing (an HL7 message has no such form) is returned as is."""
    if stored is None or not _SEALED.fullmatch(stored):
        return stored
    return unseal(stored.decode("ascii"), context).encode("latin-1")


def clear_raw(row: HL7Message) -> bytes:
    """The message as received or sent, for a reader entitled to it (the one way in)."""
    return open_bytes(row.raw, RAW_CONTEXT) or b""


def clear_ack(row: HL7Message) -> bytes | None:
    return open_bytes(row.ack_raw, ACK_CONTEXT)


def _seal_message(_mapper: Any, _conn: Any, row: HL7Message) -> None:
    """Whatever was assigned to raw / ack_raw in this flush is sealed before it reaches the database."""
    attrs = inspect(row).attrs
    if attrs.raw.history.has_changes() and row.raw is not None:
        row.raw = seal_bytes(row.raw, RAW_CONTEXT)
    if attrs.ack_raw.history.has_changes() and row.ack_raw is not None:
        row.ack_raw = seal_bytes(row.ack_raw, ACK_CONTEXT)


for _name in ("before_insert", "before_update"):
    event.listen(HL7Message, _name, _seal_message)
