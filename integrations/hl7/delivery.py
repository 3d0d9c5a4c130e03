"""Deliver one queued outbound message (a row of the HL7 log) to the HIS over MLLP.

Shared by the loop's delivery activity (activities.hl7_outbound) and the
listener's application-ACK sender (integrations.hl7.app_acks), so both count
attempts, keep the last error and treat the HIS's answer the same way:
AA/CA delivered; AE/CE the HIS will never take this content (not retried);
AR/CR, no answer or no connection: try again later.
"""
from __future__ import annotations

import asyncio

from pydantic_settings import BaseSettings, SettingsConfigDict

from core.db import session_scope
from domain.hl7_tables import HL7Message
from domain.tables import utcnow
from integrations.hl7.mllp import FramingError, MLLPClient


class HISEndpoint(BaseSettings):
    """Where the HIS listens for RadLoop's messages (RADLOOP_HIS_MLLP_*); no host: nothing is sent."""

    model_config = SettingsConfigDict(env_prefix="RADLOOP_HIS_MLLP_", extra="ignore")
    host: str | None = None
    port: int = 2576
    timeout_seconds: float = 10.0
    application: str = "HIS"
    facility: str = ""


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


async def deliver(message_id: str) -> str:
    """Send one queued message; returns delivered | not_sent, raises DeliveryFailed otherwise."""
    row = await asyncio.to_thread(load, message_id)
    if row is None:
        raise DeliveryFailed(f"no outbound message {message_id}", retryable=False)
    if row.status in ("delivered", "not_sent"):
        return row.status  # a retry after success sends nothing twice
    his = HISEndpoint()
    if not his.host:
        await asyncio.to_thread(mark, message_id, "not_sent", "no HIS endpoint configured", None, None, False)
        return "not_sent"
    try:
        async with MLLPClient(his.host, his.port, timeout=his.timeout_seconds) as client:
            ack = await client.send(row.raw)
    except (OSError, TimeoutError, FramingError) as err:
        reason = f"HIS {his.host}:{his.port} unreachable: {type(err).__name__}: {err}"
        await asyncio.to_thread(mark, message_id, "pending", reason)
        raise DeliveryFailed(reason, retryable=True) from err
    code, text = ack_code_of(ack)
    if code in ("AA", "CA"):
        await asyncio.to_thread(mark, message_id, "delivered", None, ack, code)
        return "delivered"
    if code in ("AE", "CE"):
        reason = f"HIS refused the content ({code}): {text}"
        await asyncio.to_thread(mark, message_id, "error", reason, ack, code)
        raise DeliveryFailed(reason, retryable=False)
    reason = f"HIS cannot take it now ({code or 'no MSA'}): {text}"
    await asyncio.to_thread(mark, message_id, "pending", reason, ack, code or None)
    raise DeliveryFailed(reason, retryable=True)
