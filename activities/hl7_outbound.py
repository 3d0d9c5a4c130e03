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

from pydantic import BaseModel
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.config import get_settings
from core.db import session_scope
from domain.hl7_tables import HL7Message
from integrations.hl7.delivery import DeliveryFailed, HISEndpoint, deliver
from integrations.hl7.outbound import OUTBOUND_CHARSET, OUTBOUND_VERSION, BuiltMessage, build_order_status, build_oru


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
        return queue_in(s, message_id, build)


def queue_in(s: Session, message_id: str, build) -> str:
    """Write the message to the log inside the caller's transaction, once per `message_id`."""
    if s.get(HL7Message, message_id) is not None:
        return message_id
    his = HISEndpoint.from_settings()
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


def order_status_message_id(accession_number: str, seq: int) -> str:
    return f"out-status-{accession_number}-{seq}"


def queue_order_status_in(s: Session, req: OrderStatusMessage) -> str:
    return queue_in(s, order_status_message_id(req.accession_number, req.seq),
                    lambda s, app, fac: build_order_status(s, req.accession_number, req.status, app, fac,
                                                           get_settings().his_order_status_message))


@activity.defn
def queue_report_message(req: ReportMessage) -> str:
    """ORU^R01 for a signed (final) or corrected report version; returns the message ID to deliver."""
    return _queue(f"out-oru-{req.accession_number}-v{req.version}",
                  lambda s, app, fac: build_oru(s, req.accession_number, req.version, req.kind, app, fac))


@activity.defn
def queue_order_status(req: OrderStatusMessage) -> str:
    with session_scope() as s:
        return queue_order_status_in(s, req)


@activity.defn
async def deliver_hl7(req: Delivery) -> str:
    """Send one queued message; returns its final status (delivered | not_sent)."""
    try:
        return await deliver(req.message_id)
    except DeliveryFailed as err:
        kind = "HISUnavailable" if err.retryable else "HISRejected"
        raise ApplicationError(err.reason, type=kind, non_retryable=not err.retryable) from err
