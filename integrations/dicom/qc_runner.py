"""Run objective image QC (image_qc.py) on studies once their images are received.

Decoding a few images takes long enough that it must not sit on the storage
path, so received studies are queued and a daemon thread assesses them one at a
time. The suggestion is recorded as the order's timeline event
`image_qc_suggested` (grade, reasons, per-image metrics), keyed per study, for
the image-QC task to show next to the technologist's own grading (R8.2.3).
"""
from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime, timezone

from sqlmodel import select

from activities.events import EventInput, write_event
from core.config import get_settings
from core.db import session_scope
from domain.imaging_tables import ImagingInstance
from integrations.dicom.image_qc import QCSuggestion, assess_files
from integrations.dicom.store import DicomStore

log = logging.getLogger("radloop.dicom.qc")
_queue: queue.Queue[tuple[str, str]] = queue.Queue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def assess_study(study_uid: str, accession: str) -> QCSuggestion:
    """Assess now and record the suggestion (idempotent per study)."""
    store = DicomStore(get_settings().data_dir / "dicom")
    with session_scope() as s:
        rels = list(s.exec(select(ImagingInstance.rel_path).where(
            ImagingInstance.study_instance_uid == study_uid).order_by(ImagingInstance.instance_number)))
    suggestion = assess_files([store.path(r) for r in rels])
    with session_scope() as s:
        write_event(s, EventInput(
            key=f"qc-suggested:{study_uid}", accession_number=accession, at=datetime.now(timezone.utc),
            actor="dicom", kind="image_qc_suggested",
            summary=f"objective QC suggests grade {suggestion.grade}: {'; '.join(suggestion.reasons)}"[:500],
            detail={"study_instance_uid": study_uid, **suggestion.model_dump()}))
    return suggestion


def _run() -> None:
    while True:
        study_uid, accession = _queue.get()
        try:
            assess_study(study_uid, accession)
        except Exception:
            log.exception("image QC of %s failed", study_uid)


def submit(study_uid: str, accession: str) -> None:
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="dicom-image-qc", daemon=True)
            _thread.start()
    _queue.put((study_uid, accession))
