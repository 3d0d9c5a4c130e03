"""Modality Performed Procedure Step SCP (R6.3): N-CREATE / N-SET drive the exam loop.

N-CREATE with status IN PROGRESS becomes the loop's exam-started; N-SET to
COMPLETED or DISCONTINUED becomes exam-completed / exam-discontinued, each via
services.loop_commands.record_exam_event with source "mpps", the actor
`modality:<calling AE>` in the technologist role, the performed station and time,
and on completion the performed series (mpps_events.py; the update ID is per MPPS
and step, so a retried message is not recorded twice). The loop's validators are the
authority: what they refuse is answered with a DIMSE failure and not recorded,
so the modality may retry. An MPPS for an accession RadLoop does not know is
kept and put on the reconciliation list (nothing is lost), and answered Success;
linking it to an order later replays these steps onto that loop (mpps_replay.py).

Statuses (PS3.4 F.7.2 and PS3.7 C.4.x / Annex C):
- 0x0000 Success.
- 0x0106 Invalid attribute value: N-CREATE status other than IN PROGRESS
  (PS3.4 F.7.2.1.1), an N-SET status that is not IN PROGRESS / COMPLETED /
  DISCONTINUED, or values that cannot be read; also a loop `Invalid`.
- 0x0111 Duplicate SOP Instance: N-CREATE for an MPPS UID already created.
- 0x0112 No such SOP Instance: N-SET for an MPPS never created.
- 0x0110 Processing failure, Error ID A710 "Performed Procedure Step Object may
  no longer be updated": N-SET after COMPLETED or DISCONTINUED (PS3.4 F.7.2.2.2).
- 0x0110 Processing failure with the loop's reason in Error Comment: the loop
  refused the transition (e.g. exam started before check-in, completed twice)
  or could not be reached.
- 0x0124 Refused: not authorized: the loop refused the actor (`Forbidden`).
"""
from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.events import Event

from domain.imaging_tables import MppsRecord
from integrations.dicom import completeness, index
from integrations.dicom.context import ListenerContext
from integrations.dicom.mpps_events import KIND, exam_event, update_id
from integrations.dicom.mpps_facts import VALID_STATUSES, MppsFacts, read_facts
from services.errors import Forbidden, Invalid, LoopError

log = logging.getLogger("radloop.dicom.mpps")

SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
NOT_AUTHORIZED = 0x0124
ERROR_ID_NO_LONGER_UPDATABLE = 0xA710
FINAL = ("COMPLETED", "DISCONTINUED")


def failure(status: int, comment: str, error_id: int | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    if error_id is not None:
        ds.ErrorID = error_id
    return ds


def _calling_ae(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def _to_loop(ctx: ListenerContext, uid: str, facts: MppsFacts, calling_ae: str) -> Dataset | None:
    """Tell the loop; None when it accepted, else the failure status to answer."""
    kind = KIND[facts.status]
    try:
        ctx.bridge.record_exam_event(facts.accession_number, exam_event(facts, kind, calling_ae), update_id(uid, kind))
    except Forbidden as err:
        return failure(NOT_AUTHORIZED, err.reason)
    except Invalid as err:
        return failure(INVALID_ATTRIBUTE_VALUE, err.reason)
    except LoopError as err:
        return failure(PROCESSING_FAILURE, err.reason)
    except (FutureTimeout, OSError, RuntimeError) as err:
        log.warning("loop unreachable for %s: %s", facts.accession_number, err)
        return failure(PROCESSING_FAILURE, "exam loop unavailable; retry later")
    return None


def _record(uid: str, facts: MppsFacts, ds: Dataset, calling_ae: str, existing: MppsRecord | None) -> MppsRecord:
    row = existing or MppsRecord(sop_instance_uid=uid, status=facts.status, calling_ae=calling_ae)
    row.status = facts.status
    row.accession_number = facts.accession_number
    row.scheduled_step_id = facts.scheduled_step_id
    row.study_instance_uid = facts.study_instance_uid
    row.performed_series = [s.model_dump() for s in facts.performed_series]
    row.attributes = ds.to_json_dict(bulk_data_threshold=1 << 20)
    return row


def _unmatched(uid: str, facts: MppsFacts, ds: Dataset) -> None:
    index.open_reconciliation(
        "unmatched_mpps", uid, f"MPPS for unknown accession {facts.accession_number or '(none)'}",
        accession_number=facts.accession_number, study_instance_uid=facts.study_instance_uid,
        patient_id=str(ds.get("PatientID", "") or ""), patient_name=str(ds.get("PatientName", "") or ""),
    )


def handle_n_create(event: Event, ctx: ListenerContext) -> tuple[int | Dataset, Dataset | None]:
    req = event.request
    uid = req.AffectedSOPInstanceUID or generate_uid()
    reply = Dataset()
    if not req.AffectedSOPInstanceUID:
        reply.AffectedSOPInstanceUID = uid  # PS3.7 10.1.5: the SCP assigns one
    try:
        ds = event.attribute_list
        facts = read_facts(ds)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return failure(INVALID_ATTRIBUTE_VALUE, f"unreadable attribute: {exc}"), None
    if facts.status != "IN PROGRESS":
        return failure(INVALID_ATTRIBUTE_VALUE, "N-CREATE status must be IN PROGRESS"), None
    if index.get_mpps(uid) is not None:
        return failure(DUPLICATE_SOP_INSTANCE, "this MPPS already exists"), None
    calling = _calling_ae(event)
    if not index.order_exists(facts.accession_number):
        _unmatched(uid, facts, ds)
    elif (refused := _to_loop(ctx, uid, facts, calling)) is not None:
        return refused, None
    index.save_mpps(_record(uid, facts, ds, calling, None))
    return SUCCESS, reply


def handle_n_set(event: Event, ctx: ListenerContext) -> tuple[int | Dataset, Dataset | None]:
    uid = event.request.RequestedSOPInstanceUID
    row = index.get_mpps(uid)
    if row is None:
        return failure(NO_SUCH_SOP_INSTANCE, "no such MPPS"), None
    if row.status in FINAL:
        return failure(PROCESSING_FAILURE, "Performed Procedure Step Object may no longer be updated",
                       ERROR_ID_NO_LONGER_UPDATABLE), None
    try:
        merged = Dataset.from_json(row.attributes)
        for elem in event.modification_list:
            merged[elem.tag] = elem
        facts = read_facts(merged)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return failure(INVALID_ATTRIBUTE_VALUE, f"unreadable attribute: {exc}"), None
    if facts.status not in VALID_STATUSES:
        return failure(INVALID_ATTRIBUTE_VALUE, f"unknown PPS status {facts.status!r}"), None
    if not index.order_exists(facts.accession_number) and row.accession_number != facts.accession_number \
            and index.order_exists(row.accession_number):
        # A person linked this MPPS to an order (reconciliation): that link wins over what the modality sent.
        facts = facts.model_copy(update={"accession_number": row.accession_number})
    linked = index.order_exists(facts.accession_number)
    if facts.status in FINAL and linked:
        if (refused := _to_loop(ctx, uid, facts, _calling_ae(event))) is not None:
            return refused, None
    elif not linked:
        _unmatched(uid, facts, merged)
    index.save_mpps(_record(uid, facts, merged, row.calling_ae, row))
    if facts.status == "COMPLETED" and linked:
        try:
            ctx.announcer.announce(completeness.check_accession(facts.accession_number))
        except Exception:
            log.exception("images-received check failed for %s", facts.accession_number)
    return SUCCESS, None
