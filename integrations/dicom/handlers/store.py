"""Storage SCP (R4.2.3, R4.3.2): received bytes go to the UID-addressed store as sent.

pynetdicom spools each data set to a file (STORE_RECV_CHUNKED_DATASET), so
memory stays bounded however large the object; the handler checks the file's
structure without decoding pixels, moves it into the store (a rename) and
indexes it. The same SOP Instance UID twice is idempotent: the first copy
stays, the second is answered Success and dropped.

Statuses (PS3.4 B.2.3, PS3.7 C):
- 0x0000 Success (also for a duplicate instance);
- 0xC000 Cannot understand: unreadable, truncated, invalid VR, forged length —
  the bytes are quarantined with the reason;
- 0xA900 Data set does not match SOP class: identifying UIDs missing or not
  those of the C-STORE request — quarantined;
- 0xA700 Out of resources: the store could not be written (disk full, I/O error).
Success is answered once the file is in the store; its index row is written by
the batching IndexWriter, flushed before the association's release is answered.
"""
from __future__ import annotations

import logging
import uuid
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from domain.imaging_tables import QuarantinedObject
from integrations.dicom import index
from integrations.dicom.context import ListenerContext
from integrations.dicom.instance_facts import Unacceptable, read_facts
from integrations.dicom.store import InvalidUID

log = logging.getLogger("radloop.dicom.store")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


def _quarantine(ctx: ListenerContext, path: Path, event: Event, reason: str) -> None:
    qid = uuid.uuid4().hex
    size = path.stat().st_size
    rel = ctx.store.quarantine(path, qid)
    index.record_quarantine(QuarantinedObject(
        id=qid, calling_ae=str(event.assoc.requestor.ae_title).strip(), reason=reason[:500], rel_path=rel,
        size_bytes=size, sop_class_uid=str(event.request.AffectedSOPClassUID or ""),
        sop_instance_uid=str(event.request.AffectedSOPInstanceUID or "")))
    log.warning("quarantined %s from %s: %s", rel, event.assoc.requestor.ae_title, reason)


def handle_store(event: Event, ctx: ListenerContext) -> int | Dataset:
    req = event.request
    spool = getattr(req, "_dataset_file", None)
    if spool is not None:
        spool.close()
    path = event.dataset_path
    try:
        facts = read_facts(path, str(req.AffectedSOPClassUID), str(req.AffectedSOPInstanceUID))
        rel = ctx.store.rel_path(facts.study_instance_uid, facts.series_instance_uid, facts.sop_instance_uid)
    except (Unacceptable, InvalidUID) as exc:
        status = exc.status if isinstance(exc, Unacceptable) else 0xA900
        _quarantine(ctx, path, event, str(exc))
        return _status(status, str(exc))
    size = path.stat().st_size
    try:
        ctx.store.adopt(path, rel)
    except OSError as exc:
        log.error("cannot store %s: %s", rel, exc)
        path.unlink(missing_ok=True)
        return _status(OUT_OF_RESOURCES, f"cannot write the store: {exc.strerror}")
    ctx.index_writer.submit(index.IndexItem(
        facts=facts, rel_path=rel, size=size, calling_ae=str(event.assoc.requestor.ae_title).strip(),
        received_at=index.now()))
    return SUCCESS
