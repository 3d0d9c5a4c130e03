"""Storage SCP (R4.2.3, R4.3.2): received bytes go to the UID-addressed store as sent.

pynetdicom spools each data set to a file (STORE_RECV_CHUNKED_DATASET), so
memory stays bounded however large the object; ingest.py checks the file's
structure without decoding pixels and moves it into the store (a rename). The
same SOP Instance UID twice is idempotent: the first copy stays, the second is
answered Success and dropped.

Statuses (PS3.4 B.2.3, PS3.7 C):
- 0x0000 Success (also for a duplicate instance);
- 0xC000 Cannot understand: unreadable, truncated, invalid VR, forged length —
  the bytes are quarantined with the reason;
- 0xA900 Data set does not match SOP class: identifying UIDs missing or not
  those of the C-STORE request — quarantined;
- 0xA700 Out of resources: the store could not be written (disk full, I/O error).
Success is answered once the file is in the store; its index row is written by
the batching IndexWriter, flushed before the association's release is answered.
Each instance, stored or refused, counts toward the association's audit record
(audit.py: 110104 DICOM Instances Transferred, one per study).
"""
from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from integrations.dicom import index
from integrations.dicom.context import ListenerContext
from integrations.dicom.ingest import ingest_spooled

log = logging.getLogger("radloop.dicom.store")


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


def handle_store(event: Event, ctx: ListenerContext) -> int | Dataset:
    req = event.request
    spool = getattr(req, "_dataset_file", None)
    if spool is not None:
        spool.close()
    calling = str(event.assoc.requestor.ae_title).strip()
    result = ingest_spooled(ctx.store, event.dataset_path, calling, str(req.AffectedSOPClassUID or ""),
                            str(req.AffectedSOPInstanceUID or ""))
    facts = result.facts
    ok = result.status == 0x0000 and facts is not None and result.rel_path is not None
    ctx.auditor.transferred(event.assoc, "received", facts.study_instance_uid if facts else "",
                            str(req.AffectedSOPClassUID or ""), ok, facts.patient_id if facts else "",
                            facts.accession_number if facts else "")
    if not ok:
        log.warning("refused %s from %s: %s", req.AffectedSOPInstanceUID, calling, result.reason)
        return _status(result.status, result.reason)
    assert facts is not None and result.rel_path is not None
    ctx.index_writer.submit(index.IndexItem(
        facts=facts, rel_path=result.rel_path, size=result.size, calling_ae=calling, received_at=index.now()))
    return 0x0000
