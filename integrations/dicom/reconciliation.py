"""Reconciling what the listener could not link (IHE PIR-like, R4.2.3): list, and link to an order.

An unmatched study (images whose accession / Study Instance UID / patient ID
matched no order) is linked by setting its order; the stored bytes stay as
received. The listener's sweeper then tells the loop "images received" once the
study is stable (completeness.py), as for any linked study. An unmatched MPPS is
linked by giving its record the order's accession, so its Performed Series count
toward that order's completeness; the HTTP edge then replays what it said onto
the order's exam loop (mpps_replay.py: started, completed / discontinued, each at
most once, refused steps recorded with the loop's reason), and each item lists
those outcomes in `replay`. Each link writes a timeline event on the order; the
HTTP edge audits who did it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.imaging_tables import ImagingStudy, MppsRecord, ReconciliationItem
from domain.tables import ExamOrder
from integrations.dicom.mpps_replay import ReplayStep, outcomes


class ReconciliationError(Exception):
    def __init__(self, status: Literal[404, 409, 422], reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class ReconciliationPublic(BaseModel):
    id: str
    kind: str
    state: str
    reason: str
    study_instance_uid: str
    accession_number: str = Field(description="As the modality sent it")
    patient_id: str
    patient_name: str
    created_at: datetime
    resolved_at: datetime | None
    linked_accession: str | None = Field(None, description="The order it is linked to, once resolved")
    num_instances: int | None = Field(None, description="Images in the study (unmatched studies)")
    replay: list[ReplayStep] | None = Field(
        None, description="Linked MPPS: each step it reported and whether the order's loop took it "
        "(replayed), refused it (skipped, with the reason) or has not heard it yet (pending)")


class ResolveIn(BaseModel):
    accession_number: str = Field(min_length=1, max_length=64, description="The order the images belong to")
    note: str = Field(min_length=1, max_length=500, description="Why they belong to it (kept in the timeline)")


def _public(s: Session, row: ReconciliationItem) -> ReconciliationPublic:
    linked, count, replay = None, None, None
    uid = row.id.partition(":")[2]
    if row.kind == "unmatched_study":
        study = s.get(ImagingStudy, row.study_instance_uid or uid)
        if study is not None:
            linked, count = study.order_accession, study.num_instances
    elif row.kind == "unmatched_mpps" and row.state == "resolved":
        mpps = s.get(MppsRecord, uid)
        linked = mpps.accession_number if mpps else None
        replay = outcomes(s, mpps) if mpps else None
    return ReconciliationPublic(
        id=row.id, kind=row.kind, state=row.state, reason=row.reason, study_instance_uid=row.study_instance_uid,
        accession_number=row.accession_number, patient_id=row.patient_id, patient_name=row.patient_name,
        created_at=row.created_at, resolved_at=row.resolved_at, linked_accession=linked, num_instances=count,
        replay=replay)


def list_items(s: Session, state: str | None, kind: str | None, limit: int, offset: int) -> list[ReconciliationPublic]:
    stmt = select(ReconciliationItem)
    if state:
        stmt = stmt.where(ReconciliationItem.state == state)
    if kind:
        stmt = stmt.where(ReconciliationItem.kind == kind)
    stmt = stmt.order_by(col(ReconciliationItem.created_at), col(ReconciliationItem.id)).offset(offset).limit(limit)
    return [_public(s, row) for row in s.exec(stmt)]


def _link_study(s: Session, row: ReconciliationItem, accession: str) -> str:
    study = s.get(ImagingStudy, row.study_instance_uid or row.id.partition(":")[2])
    if study is None:
        raise ReconciliationError(409, "the study of this item is no longer in the index")
    if study.order_accession not in (None, accession):
        raise ReconciliationError(409, f"the study is already linked to order {study.order_accession}")
    study.order_accession = accession
    s.add(study)
    return f"{study.num_instances} image(s) of study {study.study_instance_uid}"


def _link_mpps(s: Session, row: ReconciliationItem, accession: str) -> str:
    mpps = s.get(MppsRecord, row.id.partition(":")[2])
    if mpps is None:
        raise ReconciliationError(409, "the MPPS of this item is no longer recorded")
    mpps.accession_number = accession
    mpps.updated_at = datetime.now(timezone.utc)
    s.add(mpps)
    return f"MPPS {mpps.sop_instance_uid} ({mpps.status})"


def resolve(s: Session, item_id: str, body: ResolveIn, actor: str) -> ReconciliationPublic:
    """Link the item to the order; the same link again is a no-op, a different one a conflict."""
    row = s.get(ReconciliationItem, item_id)
    if row is None:
        raise ReconciliationError(404, f"no reconciliation item {item_id}")
    accession = body.accession_number.strip()
    if row.state == "resolved":
        current = _public(s, row).linked_accession
        if current == accession:
            return _public(s, row)
        raise ReconciliationError(409, f"already resolved to order {current}")
    order = s.get(ExamOrder, accession)
    if order is None:
        raise ReconciliationError(422, f"no order with accession {accession}")
    what = _link_study(s, row, accession) if row.kind == "unmatched_study" else _link_mpps(s, row, accession)
    at = datetime.now(timezone.utc)
    row.state, row.resolved_at = "resolved", at
    s.add(row)
    write_event(s, EventInput(
        key=f"reconciled:{row.id}", accession_number=accession, at=at, actor=actor, kind="images_reconciled",
        summary=f"{what} linked to this order by reconciliation", detail={
            "item": row.id, "kind": row.kind, "received_accession": row.accession_number,
            "received_patient_id": row.patient_id, "order_patient_id": order.patient_id, "note": body.note}))
    s.flush()
    return _public(s, row)


def link(item_id: str, body: ResolveIn, actor: str) -> ReconciliationPublic:
    """`resolve` in its own committed unit of work, so what follows (the MPPS replay) sees the link."""
    with session_scope() as s:
        return resolve(s, item_id, body, actor)


def current(item_id: str) -> ReconciliationPublic:
    with session_scope() as s:
        row = s.get(ReconciliationItem, item_id)
        if row is None:
            raise ReconciliationError(404, f"no reconciliation item {item_id}")
        return _public(s, row)
