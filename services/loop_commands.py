"""Human and device actions on running loops, as validated Temporal updates.

The workflow's validators are the authority (wrong role, stale task, double
completion, impossible transition); this module turns their rejections into
`services.errors` so the API, DICOM MPPS and HL7 can answer in their own terms.
"""
from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.loop import (
    ActionAck,
    CancelRequest,
    CorrectionRequest,
    CriticalAck,
    CriticalRaise,
    CriticalStatus,
    ExamEvent,
    ImagesReceived,
    LoopStatus,
    RescheduleRequest,
    TaskCompletion,
    TaskOutcome,
    exam_loop_workflow_id,
)
from services.errors import BY_TYPE, Conflict, Invalid, LoopError, NotFound

T = TypeVar("T")


def _translate(err: BaseException) -> LoopError:
    cause = err.cause if isinstance(err, WorkflowUpdateFailedError) else err
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None)
    if isinstance(cause, ApplicationError):
        return BY_TYPE.get(cause.type or "", Invalid)(cause.message)
    return Conflict(str(err))


async def _update(client: Client, workflow_id: str, name: str, arg: Any, result_type: type[T],
                  update_id: str | None = None) -> T:
    """`update_id`: the server runs an update with the same ID in this run once and answers repeats alike."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.execute_update(name, arg, id=update_id, result_type=result_type)
    except WorkflowUpdateFailedError as err:
        raise _translate(err) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no running loop {workflow_id}") from err
        if err.status == RPCStatusCode.FAILED_PRECONDITION:
            raise Conflict(f"loop {workflow_id} is closed") from err
        raise


async def complete_task(client: Client, workflow_id: str, completion: TaskCompletion) -> TaskOutcome:
    return await _update(client, workflow_id, "complete_task", completion, TaskOutcome)


async def record_exam_event(client: Client, accession: str, event: ExamEvent, update_id: str | None = None) -> ActionAck:
    """`update_id` makes a resend (MPPS retry, reconciliation replay) of the same step a no-op."""
    return await _update(client, exam_loop_workflow_id(accession), "record_exam_event", event, ActionAck, update_id)


async def images_received(client: Client, accession: str, info: ImagesReceived) -> ActionAck:
    """All images of the exam are in: completes the exam when MPPS did not (R4.3.2, R6.3)."""
    return await _update(client, exam_loop_workflow_id(accession), "images_received", info, ActionAck)


async def reschedule(client: Client, accession: str, req: RescheduleRequest) -> ActionAck:
    return await _update(client, exam_loop_workflow_id(accession), "reschedule", req, ActionAck)


async def cancel(client: Client, accession: str, req: CancelRequest) -> ActionAck:
    return await _update(client, exam_loop_workflow_id(accession), "cancel", req, ActionAck)


async def request_correction(client: Client, accession: str, req: CorrectionRequest) -> ActionAck:
    return await _update(client, exam_loop_workflow_id(accession), "request_correction", req, ActionAck)


async def raise_critical(client: Client, accession: str, req: CriticalRaise) -> ActionAck:
    """Whoever finds a critical value first raises it; the reply's detail is its ID."""
    return await _update(client, exam_loop_workflow_id(accession), "raise_critical", req, ActionAck)


async def acknowledge_critical(client: Client, critical_value_id: str, ack: CriticalAck) -> CriticalStatus:
    return await _update(client, critical_value_id, "acknowledge", ack, CriticalStatus)


async def loop_status(client: Client, accession: str) -> LoopStatus:
    handle = client.get_workflow_handle(exam_loop_workflow_id(accession))
    try:
        return await handle.query("status", result_type=LoopStatus)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no loop for accession {accession}") from err
        raise
