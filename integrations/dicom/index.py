"""Database side of the DICOM listener: MPPS records, reconciliation items, the image index.

Every write is keyed by a DICOM UID (or `<kind>:<uid>`), so a retried
association or a resent object updates the row it wrote before.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, select

from core.db import session_scope
from domain.imaging_tables import (
    ImagingInstance,
    ImagingSeries,
    ImagingStudy,
    MppsRecord,
    QuarantinedObject,
    ReconciliationItem,
)
from domain.tables import ExamOrder, PatientIdentifier, WorklistEntry
from integrations.dicom.instance_facts import InstanceFacts
from security.field_crypto import identifier_index


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


# ---- image index ---------------------------------------------------------------------
class IndexOutcome(BaseModel):
    new: bool
    order_accession: str | None = None
    reconciliation_id: str | None = None


def _insert_ignore(session: Session, model: type[SQLModel], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if the row is new.

    Writing first takes SQLite's write lock before any read, so concurrent
    associations serialise instead of failing on a stale snapshot; on PostgreSQL
    the unique key does the same job.
    """
    dialect = session.get_bind().dialect.name
    ins = pg_insert if dialect == "postgresql" else sqlite_insert
    table = model.__table__  # type: ignore[attr-defined]
    pk = list(table.primary_key.columns)[0]
    stmt = ins(table).values(**values).on_conflict_do_nothing().returning(pk)
    # RETURNING, not rowcount: psycopg reports no reliable rowcount for ON CONFLICT DO NOTHING.
    return session.execute(stmt).first() is not None


def _patient_matches(session: Session, order: ExamOrder, patient_id: str) -> bool:
    """The image's PatientID names the order's patient: its RadLoop ID or an identifier (by blind index)."""
    if not patient_id or patient_id == order.patient_id:
        return True
    idents = session.exec(select(PatientIdentifier).where(
        PatientIdentifier.patient_id == order.patient_id)).all()
    return any(i.value_bidx == identifier_index(i.system, patient_id) for i in idents)


def _find_order(session: Session, facts: InstanceFacts) -> tuple[str | None, str]:
    """(accession, '') when the study belongs to an order, else (None, why not)."""
    order = session.get(ExamOrder, facts.accession_number) if facts.accession_number else None
    if order is None:
        entry = session.exec(select(WorklistEntry).where(
            WorklistEntry.study_instance_uid == facts.study_instance_uid)).first()
        order = session.get(ExamOrder, entry.accession_number) if entry else None
    if order is None:
        return None, f"no order for accession {facts.accession_number or '(none)'} or this Study Instance UID"
    if not _patient_matches(session, order, facts.patient_id):
        return None, f"patient ID {facts.patient_id} does not match order {order.accession_number}"
    return order.accession_number, ""


class IndexItem(BaseModel):
    facts: InstanceFacts
    rel_path: str
    size: int
    calling_ae: str
    received_at: datetime


def _add_series_and_study(s: Session, items: list[IndexItem]) -> list[IndexOutcome]:
    """Series and study rows for newly indexed instances (all of one study), link once."""
    first = items[0].facts
    by_series: dict[str, list[IndexItem]] = {}
    for it in items:
        by_series.setdefault(it.facts.series_instance_uid, []).append(it)
    new_series = 0
    modalities: list[str] = []
    for series_uid, group in by_series.items():
        f = group[0].facts
        if _insert_ignore(s, ImagingSeries, {
            "series_instance_uid": series_uid, "study_instance_uid": f.study_instance_uid, "modality": f.modality,
            "series_number": f.series_number, "series_description": f.series_description,
            "body_part_examined": f.body_part_examined, "num_instances": 0,
        }):
            new_series += 1
            modalities.append(f.modality)
        s.exec(update(ImagingSeries).where(ImagingSeries.series_instance_uid == series_uid)  # type: ignore[call-overload]
               .values(num_instances=ImagingSeries.num_instances + len(group)))
    at = max(it.received_at for it in items)
    _insert_ignore(s, ImagingStudy, {
        "study_instance_uid": first.study_instance_uid, "patient_id": first.patient_id,
        "patient_name": first.patient_name, "patient_birth_date": first.patient_birth_date,
        "patient_sex": first.patient_sex, "accession_number": first.accession_number,
        "study_date": first.study_date, "study_time": first.study_time, "study_id": first.study_id,
        "study_description": first.study_description, "referring_physician_name": first.referring_physician_name,
        "modalities": "", "specific_character_set": first.specific_character_set,
        "num_series": 0, "num_instances": 0, "first_received_at": at, "last_received_at": at,
    })
    s.exec(update(ImagingStudy).where(ImagingStudy.study_instance_uid == first.study_instance_uid)  # type: ignore[call-overload]
           .values(num_instances=ImagingStudy.num_instances + len(items),
                   num_series=ImagingStudy.num_series + new_series, last_received_at=at))
    study = s.get(ImagingStudy, first.study_instance_uid)
    assert study is not None
    known = study.modalities.split()
    study.modalities = " ".join(known + [m for m in dict.fromkeys(modalities) if m and m not in known])
    outcome = IndexOutcome(new=True, order_accession=study.order_accession)
    if study.order_accession is None:
        accession, why = _find_order(s, first)
        if accession is not None:
            study.order_accession = outcome.order_accession = accession
        else:
            rid = f"unmatched_study:{first.study_instance_uid}"
            if s.get(ReconciliationItem, rid) is None:
                s.add(ReconciliationItem(
                    id=rid, kind="unmatched_study", study_instance_uid=first.study_instance_uid,
                    accession_number=first.accession_number, patient_id=first.patient_id,
                    patient_name=first.patient_name, reason=why))
            outcome.reconciliation_id = rid
    s.add(study)
    return [outcome] * len(items)


def index_batch(items: list[IndexItem]) -> dict[str, IndexOutcome]:
    """Index stored instances in one transaction; SOP Instance UID -> outcome (new=False: known already).

    One multi-row INSERT .. ON CONFLICT DO NOTHING RETURNING finds the new
    instances (and takes SQLite's write lock before any read); series and study
    counters are then bumped once per series and study, not once per image.
    """
    if not items:
        return {}
    unique = list({it.facts.sop_instance_uid: it for it in items}.values())
    outcomes = {it.facts.sop_instance_uid: IndexOutcome(new=False) for it in items}
    with session_scope() as s:
        dialect = s.get_bind().dialect.name
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        table = ImagingInstance.__table__  # type: ignore[attr-defined]
        stmt = ins(table).values([{
            "sop_instance_uid": it.facts.sop_instance_uid, "series_instance_uid": it.facts.series_instance_uid,
            "study_instance_uid": it.facts.study_instance_uid, "sop_class_uid": it.facts.sop_class_uid,
            "transfer_syntax_uid": it.facts.transfer_syntax_uid, "instance_number": it.facts.instance_number,
            "rel_path": it.rel_path, "size_bytes": it.size, "calling_ae": it.calling_ae,
            "received_at": it.received_at,
        } for it in unique]).on_conflict_do_nothing().returning(table.c.sop_instance_uid)
        new = {row[0] for row in s.execute(stmt)}
        by_study: dict[str, list[IndexItem]] = {}
        for it in unique:
            if it.facts.sop_instance_uid in new:
                by_study.setdefault(it.facts.study_instance_uid, []).append(it)
        for group in by_study.values():
            for it, outcome in zip(group, _add_series_and_study(s, group)):
                outcomes[it.facts.sop_instance_uid] = outcome
    return outcomes


def index_instance(facts: InstanceFacts, rel_path: str, size: int, calling_ae: str) -> IndexOutcome:
    """Index one stored instance (a batch of one)."""
    item = IndexItem(facts=facts, rel_path=rel_path, size=size, calling_ae=calling_ae, received_at=now())
    return index_batch([item])[facts.sop_instance_uid]


def record_quarantine(row: QuarantinedObject) -> None:
    with session_scope() as s:
        s.add(row)


def instance_path(sop_instance_uid: str) -> str | None:
    with session_scope() as s:
        row = s.get(ImagingInstance, sop_instance_uid)
        return row.rel_path if row else None
