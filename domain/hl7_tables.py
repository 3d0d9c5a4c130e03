"""The HL7 message log: every inbound and outbound message, its ACK and its timing.

One row per message received or sent (a resend is its own row, pointing at the
first receipt), so operators can answer "did we get it, what did we say, how
long did it take" by control ID, patient or accession number. The first receipt
of a (sender, MSH-10) holds `dedup_key`: the unique key that makes a resend
replay the stored ACK instead of acting twice.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


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
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False), description="As received (head only if oversized)")
    raw_size: int = 0
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    patient_id: str | None = Field(default=None, index=True)
    patient_identifier: str | None = Field(default=None, index=True, description="First PID-3 value")
    accession_number: str | None = Field(default=None, index=True)
    placer_order_number: str | None = Field(default=None, index=True)
    status: str = Field(default="received", index=True,
                        description="inbound: processed | error | rejected | duplicate; "
                        "outbound: queued | pending | delivered | error | not_sent")
    ack_code: str | None = Field(default=None, description="AA/AE/AR or CA/CE/CR")
    ack_raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    application_ack_code: str | None = Field(
        default=None, description="Enhanced mode: the application ack MSH-16 asked for (delivery is outbound's)")
    error: str | None = Field(default=None, sa_column=Column(Text))
    received_at: datetime = Field(default_factory=utcnow, index=True)
    acked_at: datetime | None = None
    processing_ms: float | None = None
    attempts: int = Field(default=0, description="Outbound: delivery attempts so far")
