"""Index files that reached the store but not the index (a crash inside the batching window).

The Storage SCP answers Success once a file is in the store; its index row follows
within IndexWriter.GATHER_SECONDS. If the process dies in between, the file is
safe but unindexed. At start the listener walks only the store directories
changed since the newest indexed instance (minus a margin) and indexes what is
missing, so nothing a modality was told is stored stays invisible.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from core.db import session_scope
from domain.imaging_tables import ImagingInstance
from integrations.dicom import index
from integrations.dicom.instance_facts import Unacceptable, read_facts
from integrations.dicom.store import DicomStore

log = logging.getLogger("radloop.dicom.reindex")
MARGIN = timedelta(minutes=10)


def _changed_files(root: Path, cutoff: float) -> list[Path]:
    """*.dcm under study/series directories modified at or after `cutoff` (mtime seconds)."""
    found: list[Path] = []
    for study in os.scandir(root):
        if not study.is_dir() or study.name.startswith("_"):
            continue
        # A new file in an existing series changes only that series directory's mtime,
        # so every study directory is listed (cheap) and series directories are pruned.
        for series in os.scandir(study.path):
            if series.is_dir() and series.stat().st_mtime >= cutoff:
                found += [Path(f.path) for f in os.scandir(series.path)
                          if f.name.endswith(".dcm") and not f.name.startswith(".") and f.stat().st_mtime >= cutoff]
    return found


def reindex_missing(store: DicomStore) -> int:
    """Index stored files the index does not know; returns how many were added."""
    with session_scope() as s:
        newest = s.exec(select(func.max(ImagingInstance.received_at))).one()
    cutoff = 0.0 if newest is None else (
        (newest.replace(tzinfo=timezone.utc) if newest.tzinfo is None else newest) - MARGIN).timestamp()
    candidates = _changed_files(store.root, cutoff)
    if not candidates:
        return 0
    with session_scope() as s:
        known = set(s.exec(select(ImagingInstance.sop_instance_uid).where(
            ImagingInstance.sop_instance_uid.in_([p.stem for p in candidates]))))  # type: ignore[attr-defined]
    items = []
    for path in candidates:
        if path.stem in known:
            continue
        try:
            facts = read_facts(path, None, None)
        except Unacceptable as exc:
            log.warning("stored file %s cannot be indexed: %s", path, exc)
            continue
        items.append(index.IndexItem(
            facts=facts, rel_path=str(path.relative_to(store.root)), size=path.stat().st_size, calling_ae="",
            received_at=datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)))
    if items:
        index.index_batch(items)
        log.info("indexed %d stored files the index had missed", len(items))
    return len(items)
