"""One way in for received objects (C-STORE and STOW-RS): check, quarantine or store.

The object arrives as a spooled Part 10 file. It is checked without decoding
pixels (instance_facts), then either moved into the UID-addressed store or
quarantined with the reason. Indexing is the caller's choice (the listener
batches it, the HTTP edge writes it at once).
"""
from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import BaseModel

from domain.imaging_tables import QuarantinedObject
from integrations.dicom import index
from integrations.dicom.instance_facts import InstanceFacts, Unacceptable, read_facts
from integrations.dicom.store import DicomStore, InvalidUID

OUT_OF_RESOURCES = 0xA700


class IngestResult(BaseModel):
    status: int  # 0x0000, or the C-STORE failure status (also used as STOW-RS Failure Reason)
    reason: str = ""
    facts: InstanceFacts | None = None
    rel_path: str | None = None
    size: int = 0
    quarantine_id: str | None = None


def _quarantine(store: DicomStore, path: Path, source: str, reason: str, sop_class: str, sop_uid: str) -> str:
    qid = uuid.uuid4().hex
    size = path.stat().st_size
    rel = store.quarantine(path, qid)
    index.record_quarantine(QuarantinedObject(
        id=qid, calling_ae=source, reason=reason[:500], rel_path=rel, size_bytes=size,
        sop_class_uid=sop_class, sop_instance_uid=sop_uid))
    return qid


def ingest_spooled(store: DicomStore, path: Path, source: str, sop_class: str | None = None,
                   sop_instance: str | None = None) -> IngestResult:
    """Check and store (or quarantine) the file at `path`; the spool file is consumed either way."""
    try:
        facts = read_facts(path, sop_class, sop_instance)
        rel = store.rel_path(facts.study_instance_uid, facts.series_instance_uid, facts.sop_instance_uid)
    except (Unacceptable, InvalidUID) as exc:
        status = exc.status if isinstance(exc, Unacceptable) else 0xA900
        qid = _quarantine(store, path, source, str(exc), sop_class or "", sop_instance or "")
        return IngestResult(status=status, reason=str(exc), quarantine_id=qid)
    size = path.stat().st_size
    try:
        store.adopt(path, rel)
    except OSError as exc:
        path.unlink(missing_ok=True)
        return IngestResult(status=OUT_OF_RESOURCES, reason=f"cannot write the store: {exc.strerror}")
    return IngestResult(status=0x0000, facts=facts, rel_path=rel, size=size)
