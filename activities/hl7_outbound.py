"""Outbound HL7 to the HIS as activities: queue a message durably, then deliver it until the HIS takes it.

Two steps so that nothing is dropped while the HIS is down: `queue_*` writes the
message to the log (deterministic ID: a retried activity queues it once), and
`deliver_hl7` sends it over MLLP. A HIS that is down or answers AR/CR makes the
delivery fail retryably (Temporal retries with backoff, as long as it takes);
each attempt is counted on the log row, so operators see the backlog
(integrations.hl7.log.outbound_backlog). AE/CE means the HIS will never take
this content: the row says why and the failure is not retried. The loop
delivers its messages one after another, so they reach the HIS in order.
"""
from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.db import session_scope
from domain.hl7_tables import HL7Message
from domain.tables import utcnow
from integrations.hl7.mllp import FramingError, MLLPClient
from integrations.hl7.outbound import OUTBOUND_CHARSET, OUTBOUND_VERSION, BuiltMessage, build_order_status, build_oru


class HISEndpoint(BaseSettings):
    """Where the HIS listens for RadLoop's messages (RADLOOP_HIS_MLLP_*); no host: nothing is sent."""

    model_config = SettingsConfigDict(env_prefix="RADLOOP_HIS_MLLP_", extra="ignore")
    host: str | None = None
    port: int = 2576
    timeout_seconds: float = 10.0
    application: str = "HIS"
    facility: str = ""


class ReportMessage(BaseModel):
    accession_number: str
    version: int
    kind: str  # final | corrected


class OrderStatusMessage(BaseModel):
    accession_number: str
    status: str  # ExamOrder.status, mapped to HL7 table 0038
    seq: int  # the loop's count of status messages: the deterministic key


class Delivery(BaseModel):
    message_id: str


def _queue(message_id: str, build) -> str:
    with session_scope() as s:
        if s.get(HL7Message, message_id) is not None:
            return message_id
        his = HISEndpoint()
        built: BuiltMessage = build(s, his.application, his.facility)
        s.add(HL7Message(
            id=message_id, direction="outbound", control_id=built.control_id, message_type=built.message_type,
            version=OUTBOUND_VERSION, sending_application="RADLOOP", receiving_application=his.application,
            receiving_facility=his.facility, charset=OUTBOUND_CHARSET, raw=built.text.encode("utf-8"),
            raw_size=len(built.text.encode("utf-8")), status="queued", patient_id=built.patient_id,
            accession_number=built.accession_number, placer_order_number=built.placer_order_number,
            summary={"message_type": built.message_type},
        ))
    return message_id


@activity.defn
def queue_report_message(req: ReportMessage) -> str:
    """ORU^R01 for a signed (final) or corrected report version; returns the message ID to deliver."""
    return _queue(f"out-oru-{req.accession_number}-v{req.version}",
                  lambda s, app, fac: build_oru(s, req.accession_number, req.version, req.kind, app, fac))


@activity.defn
def queue_order_status(req: OrderStatusMessage) -> str:
    return _queue(f"out-status-{req.accession_number}-{req.seq}",
                  lambda s, app, fac: build_order_status(s, req.accession_number, req.status, app, fac))


def _mark(message_id: str, status: str, error: str | None = None, ack: bytes | None = None,
          ack_code: str | None = None, attempted: bool = True) -> HL7Message:
    with session_scope() as s:
        row = s.get(HL7Message, message_id)
        if row is None:
            raise ApplicationError(f"no outbound message {message_id}", type="NotFound", non_retryable=True)
        row.status, row.error = status, error
        if attempted:
            row.attempts += 1
        if ack is not None:
            row.ack_raw, row.ack_code, row.acked_at = ack, ack_code, utcnow()
        s.add(row)
        return row


def _load(message_id: str) -> HL7Message | None:
    with session_scope() as s:
        return s.get(HL7Message, message_id)


def ack_code_of(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-3) of an ACK, whatever its charset (MSA is ASCII)."""
    for line in ack.replace(b"\n", b"\r").split(b"\r"):
        if line.startswith(b"MSA") and len(line) > 3:
            fields = line.decode("utf-8", "replace").split(chr(line[3]))
            return (fields[1] if len(fields) > 1 else ""), (fields[3] if len(fields) > 3 else "")
    return "", ""


@activity.defn
async def deliver_hl7(req: Delivery) -> str:
    """Send one queued message; returns its final status (delivered | not_sent)."""
    row = await asyncio.to_thread(_load, req.message_id)
    if row is None:
        raise ApplicationError(f"no outbound message {req.message_id}", type="NotFound", non_retryable=True)
    if row.status in ("delivered", "not_sent"):
        return row.status  # a retried activity after success
    his = HISEndpoint()
    if not his.host:
        await asyncio.to_thread(_mark, req.message_id, "not_sent", "no HIS endpoint configured", None, None, False)
        return "not_sent"
    started = datetime.now()
    try:
        async with MLLPClient(his.host, his.port, timeout=his.timeout_seconds) as client:
            ack = await client.send(row.raw)
    except (OSError, TimeoutError, FramingError) as err:
        reason = f"HIS {his.host}:{his.port} unreachable: {type(err).__name__}: {err}"
        await asyncio.to_thread(_mark, req.message_id, "pending", reason)
        raise ApplicationError(reason, type="HISUnavailable") from err
    code, text = ack_code_of(ack)
    if code in ("AA", "CA"):
        await asyncio.to_thread(_mark, req.message_id, "delivered", None, ack, code)
        activity.logger.info("delivered %s in %.0f ms", req.message_id,
                             (datetime.now() - started).total_seconds() * 1000)
        return "delivered"
    if code in ("AE", "CE"):
        reason = f"HIS refused the content ({code}): {text}"
        await asyncio.to_thread(_mark, req.message_id, "error", reason, ack, code)
        raise ApplicationError(reason, type="HISRejected", non_retryable=True)
    reason = f"HIS cannot take it now ({code or 'no MSA'}): {text}"
    await asyncio.to_thread(_mark, req.message_id, "pending", reason, ack, code or None)
    raise ApplicationError(reason, type="HISUnavailable")
