"""Storage Commitment Push Model SCP (PS3.4 Annex J): N-ACTION in, N-EVENT-REPORT out.

A modality asks whether RadLoop has safely stored a list of instances. We answer
the N-ACTION at once (0x0000, or 0x0123 No such action for an Action Type other
than 1, 0x0106 for an unreadable request), record the transaction, then check
each instance: committed when the index holds it with the same SOP Class and its
file is in the store. The result goes back as an N-EVENT-REPORT (Event Type 1:
all committed, 2: some failed with Failure Reason 0x0112 no such object instance
or 0x0119 class/instance conflict, PS3.4 J.3.3.1), on the same association when
it is still open, else on a new association to the requester's address from
settings.dicom_move_destinations (J.3.3: either is allowed), also when sending on
the open association fails. That new association uses TLS when the requester's AE
is listed in settings.dicom_destination_tls (tls.peer_tls_args).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import N_ACTION_RSP
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from core.db import session_scope
from domain.imaging_tables import ImagingInstance, StorageCommitment
from integrations.dicom import tls
from integrations.dicom.context import ListenerContext

log = logging.getLogger("radloop.dicom.commitment")
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
RELEASE_GRACE_SECONDS = 0.3
SAME_ASSOCIATION_TIMEOUT = 10


def _check(ctx: ListenerContext, refs: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    ok: list[dict[str, str]] = []
    failed: list[dict[str, object]] = []
    with session_scope() as s:
        for ref in refs:
            row = s.get(ImagingInstance, ref["sop_instance_uid"])
            if row is None or not ctx.store.path(row.rel_path).is_file():
                failed.append({**ref, "reason": NO_SUCH_OBJECT_INSTANCE})
            elif row.sop_class_uid != ref["sop_class_uid"]:
                failed.append({**ref, "reason": CLASS_INSTANCE_CONFLICT})
            else:
                ok.append(ref)
    return ok, failed


def report_dataset(transaction_uid: str, ok: list[dict[str, str]], failed: list[dict[str, object]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    items = []
    for ref in ok:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ref["sop_class_uid"], ref["sop_instance_uid"]
        items.append(item)
    if items:
        ds.ReferencedSOPSequence = items
    if failed:
        bad = []
        for ref in failed:
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ref["sop_class_uid"], ref["sop_instance_uid"]
            item.FailureReason = ref["reason"]
            bad.append(item)
        ds.FailedSOPSequence = bad
    return ds


def _send_report(assoc: Association, ds: Dataset, event_type: int) -> bool:
    status, _ = assoc.send_n_event_report(ds, event_type, StorageCommitmentPushModel, WELL_KNOWN_INSTANCE)
    return bool(status) and int(status.Status) == 0x0000


def _send_on_new_association(ctx: ListenerContext, calling_ae: str, ds: Dataset, event_type: int) -> bool:
    address = ctx.settings.move_destinations.get(calling_ae)
    if address is None:
        log.warning("no address for %s to report commitment %s", calling_ae, ds.TransactionUID)
        return False
    tls_args = tls.peer_tls_args(ctx.settings, calling_ae, address[0])
    ae = AE(ae_title=ctx.settings.ae_title)
    ae.add_requested_context(StorageCommitmentPushModel)
    peer = ae.associate(address[0], address[1], ae_title=calling_ae, tls_args=tls_args,  # type: ignore[arg-type]
                        ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)])
    if not peer.is_established:
        return False
    try:
        return _send_report(peer, ds, event_type)
    finally:
        peer.release()


def _report_later(ctx: ListenerContext, assoc: Association, calling_ae: str, transaction_uid: str,
                  refs: list[dict[str, str]], response_sent: threading.Event) -> None:
    response_sent.wait(5)  # the N-ACTION response goes first (PS3.4 J.3.2)
    ok, failed = _check(ctx, refs)
    ds = report_dataset(transaction_uid, ok, failed)
    event_type = 2 if failed else 1
    # Most modalities release right after the N-ACTION response and expect the report on an
    # association of ours; give a release that is coming the time to arrive before choosing.
    deadline = time.monotonic() + RELEASE_GRACE_SECONDS
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = False
    try:
        if assoc.is_established:
            assoc.dimse_timeout = SAME_ASSOCIATION_TIMEOUT
            sent = _send_report(assoc, ds, event_type)
        if not sent:
            sent = _send_on_new_association(ctx, calling_ae, ds, event_type)
    except Exception:
        log.exception("commitment report %s failed", transaction_uid)
    with session_scope() as s:
        row = s.get(StorageCommitment, transaction_uid)
        if row is not None:
            row.failed = failed
            row.state = "reported" if sent else "report_failed"
            row.reported_at = datetime.now(timezone.utc)
            s.add(row)


def handle_n_action(event: Event, ctx: ListenerContext) -> tuple[int, Dataset | None]:
    if event.request.ActionTypeID != 1:
        return 0x0123, None  # No such action
    try:
        info = event.action_information
        transaction_uid = str(info.TransactionUID)
        refs = [{"sop_class_uid": str(r.ReferencedSOPClassUID), "sop_instance_uid": str(r.ReferencedSOPInstanceUID)}
                for r in info.ReferencedSOPSequence]
    except (AttributeError, KeyError, ValueError, TypeError):
        return 0x0106, None  # Invalid attribute value
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    with session_scope() as s:
        row = s.get(StorageCommitment, transaction_uid) or StorageCommitment(
            transaction_uid=transaction_uid, calling_ae=calling_ae)
        row.requested, row.state = refs, "pending"
        s.add(row)
    response_sent = threading.Event()

    def on_sent(sent: Event) -> None:
        if isinstance(sent.message, N_ACTION_RSP):
            response_sent.set()
            sent.assoc.unbind(evt.EVT_DIMSE_SENT, on_sent)

    event.assoc.bind(evt.EVT_DIMSE_SENT, on_sent)
    threading.Thread(target=_report_later, args=(ctx, event.assoc, calling_ae, transaction_uid, refs, response_sent),
                     name=f"commitment-{transaction_uid[-8:]}", daemon=True).start()
    return 0x0000, None
