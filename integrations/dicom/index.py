"""Database side of the DICOM listener: MPPS records, reconciliation items, the image index.

Every write is keyed by a DICOM UID (or `<kind>:<uid>`), so a retried
association or a resent object updates the row it wrote before.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlmodel import select

from core.db import session_scope
from domain.imaging_tables import MppsRecord, ReconciliationItem
from domain.tables import ExamOrder


def now() -> datetime:
    return datetime.now(timezone.utc)


# ---- orders --------------------------------------------------------------------------
def order_exists(accession: str) -> bool:
    if not accession:
        return False
    with session_scope() as s:
        return s.get(ExamOrder, accession) is not None


# ---- MPPS ----------------------------------------------------------------------------
def get_mpps(sop_instance_uid: str) -> MppsRecord | None:
    with session_scope() as s:
        return s.get(MppsRecord, sop_instance_uid)


def save_mpps(record: MppsRecord) -> None:
    record.updated_at = now()
    with session_scope() as s:
        s.merge(record)


# ---- reconciliation ------------------------------------------------------------------
def open_reconciliation(kind: str, uid: str, reason: str, **fields: Any) -> str:
    """One open item per (kind, uid); a second call refreshes the reason, never duplicates."""
    rid = f"{kind}:{uid}"
    with session_scope() as s:
        row = s.get(ReconciliationItem, rid) or ReconciliationItem(id=rid, kind=kind, reason=reason)
        row.reason = reason
        for key, value in fields.items():
            setattr(row, key, value)
        s.add(row)
    return rid


def open_reconciliations(kind: str | None = None) -> list[ReconciliationItem]:
    with session_scope() as s:
        stmt = select(ReconciliationItem).where(ReconciliationItem.state == "open")
        if kind:
            stmt = stmt.where(ReconciliationItem.kind == kind)
        return list(s.exec(stmt))
