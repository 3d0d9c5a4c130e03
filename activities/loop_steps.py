"""A loop step change in one transaction: the order row, its event and the HIS status message.

The exam loop changes step about a dozen times; doing the row, the event and
the queued HL7 status message in one local activity (one commit) instead of
two activities is a large part of what a loop costs the worker. Idempotent by
the event key and the message ID, so a retried attempt writes nothing twice.
"""
from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from activities.hl7_outbound import OrderStatusMessage, queue_order_status_in
from activities.orders import StepChange, set_order_step_in
from core.db import session_scope


class StepAdvance(BaseModel):
    change: StepChange
    hl7_status_seq: int | None = None  # set when the HIS gets an order-status message for this step


@activity.defn
def advance_loop_step(req: StepAdvance) -> str | None:
    """Returns the queued HL7 message ID (for the loop's ordered outbox), or None."""
    with session_scope() as s:
        set_order_step_in(s, req.change)
        if req.hl7_status_seq is None or not req.change.status:
            return None
        return queue_order_status_in(s, OrderStatusMessage(
            accession_number=req.change.accession_number, status=req.change.status, seq=req.hl7_status_seq))
