"""Deliver one queued outbound message (a row of the HL7 log) to the HIS over MLLP.

Shared by the loop's delivery activity (activities.hl7_outbound) and the
listener's application-ACK sender (integrations.hl7.app_acks), so both count
attempts, keep the last error and treat the HIS's answer the same way:
AA/CA delivered; AE/CE the HIS will never take this content (not retried);
AR/CR, no answer or no connection: try again later. Both final answers are
audited (PS3.15 110106 Export, integrations.hl7.audit).
"""
from __future__ import annotations

import asyncio

from pydantic import BaseModel

from core.config import Settings, get_settings

from core.db import session_scope
from domain.hl7_tables import HL7Message, clear_raw
from domain.tables import utcnow
from integrations.hl7.audit import record_sent
from integrations.hl7.mllp import FramingError, MLLPClient


class HISEndpoint(BaseModel):
    """Where the HIS listens for RadLoop's messages (core.config, RADLOOP_HIS_MLLP_*); no host: nothing is sent."""

    host: str | None = None
    port: int = 2576
    timeout_seconds: float = 10.0
    application: str = "HIS"
    facility: str = ""
    order_status_message: str = "ORM^O01"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> HISEndpoint:
        s = settings or get_settings()
        return cls(host=s.his_mllp_host, port=s.his_mllp_port, timeout_seconds=s.his_mllp_timeout_seconds,
                   application=s.his_mllp_application, facility=s.his_mllp_facility,
                   order_status_message=s.his_order_status_message)


class DeliveryFailed(Exception):
    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def mark(message_id: str, status: str, error: str | None = None, ack: bytes | None = None,
         ack_code: str | None = None, attempted: bool = True) -> None:
    with session_scope() as s:
        row = s.get(HL7Message, message_id)
        if row is None:
            return
        row.status, row.error = status, error
        if attempted:
            row.attempts += 1
        if ack is not None:
            row.ack_raw, row.ack_code, row.acked_at = ack, ack_code, utcnow()
        s.add(row)


def load(message_id: str) -> HL7Message | None:
    with session_scope() as s:
        return s.get(HL7Message, message_id)


def ack_code_of(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-3) of an ACK, whatever its charset (MSA is ASCII)."""
    for line in ack.replace(b"\n", b"\r").split(b"\r"):
        if line.startswith(b"MSA") and len(line) > 3:
            fields = line.decode("utf-8", "replace").split(chr(line[3]))
            return (fields[1] if len(fields) > 1 else ""), (fields[3] if len(fields) > 3 else "")
    return "", ""


def _audit_sent(message_id: str, peer: str) -> None:
    """PS3.15 110106 Export for a final answer of the HIS (integrations.hl7.audit)."""
    row = load(message_id)
    if row is not None:
        record_sent(row, peer)


async def deliver(message_id: str) -> str:
    """Send one queued message; returns delivered | not_sent, raises DeliveryFailed otherwise."""
    row = await asyncio.to_thread(load, message_id)
    if row is None:
        raise DeliveryFailed(f"no outbound message {message_id}", retryable=False)
    if row.status in ("delivered", "not_sent"):
        return row.status  # a retry after success sends nothing twice
    his = HISEndpoint.from_settings()
    if not his.host:
        await asyncio.to_thread(mark, message_id, "not_sent", "no HIS endpoint configured", None, None, False)
        return "not_sent"
    try:
        async with MLLPClient(his.host, his.port, timeout=his.timeout_seconds) as client:
            ack = await client.send(clear_raw(row))  # sealed at rest (domain.hl7_tables)
    except (OSError, TimeoutError, FramingError) as err:
        reason = f"HIS {his.host}:{his.port} unreachable: {type(err).__name__}: {err}"
        await asyncio.to_thread(mark, message_id, "pending", reason)
        raise DeliveryFailed(reason, retryable=True) from err
    code, text = ack_code_of(ack)
    if code in ("AA", "CA"):
        await asyncio.to_thread(mark, message_id, "delivered", None, ack, code)
        await asyncio.to_thread(_audit_sent, message_id, f"{his.host}:{his.port}")
        return "delivered"
    if code in ("AE", "CE"):
        reason = f"HIS refused the content ({code}): {text}"
        await asyncio.to_thread(mark, message_id, "error", reason, ack, code)
        await asyncio.to_thread(_audit_sent, message_id, f"{his.host}:{his.port}")
        raise DeliveryFailed(reason, retryable=False)
    reason = f"HIS cannot take it now ({code or 'no MSA'}): {text}"
    await asyncio.to_thread(mark, message_id, "pending", reason, ack, code or None)
    raise DeliveryFailed(reason, retryable=True)
