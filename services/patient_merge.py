"""Merging two patient records into one (ADT A40 or a registrar) and undoing it within a window.

The surviving ID takes the merged patient's identifiers, orders (and with them
their studies, reports and loops), worklist entries and review-queue pairs; the
merged patient row stays, pointing at the survivor (`merged_into`), so anything
that still says the old ID resolves to the person. Everything moved is recorded
by row key on the merge record, which is both the audit trail and what an
unmerge puts back, exactly, and only within UNMERGE_WINDOW.

Refused, each with a reason a registrar can act on: merging a patient into
itself, into a patient that was itself merged away (which is also how an
inverse or circular merge shows up), merging a patient already merged into
someone else, and unknown patients. The same merge sent again is a no-op.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlmodel import Session, col, select

from domain.empi_tables import PatientMatchReview, PatientMerge
from domain.tables import DomainEvent, ExamOrder, Patient, PatientIdentifier, WorklistEntry, utcnow
from security.field_crypto import identifier_index
from services.errors import Conflict, Invalid, NotFound

SessionFactory = Callable[[], AbstractContextManager[Session]]
UNMERGE_WINDOW = timedelta(days=7)
CLOSED_STEPS = ("closed", "cancelled")


@dataclass(frozen=True)
class MergeResult:
    merge_id: str
    surviving_id: str
    merged_id: str
    already_done: bool = False
    moved_identifiers: int = 0
    moved_orders: list[str] = field(default_factory=list)
    open_accessions: list[str] = field(default_factory=list)  # loops whose workflow still carries the old ID


def resolve(session: Session, patient_id: str) -> str:
    """The ID a patient is known by now (follows merges)."""
    seen = set()
    current = session.get(Patient, patient_id)
    while current is not None and current.merged_into and current.id not in seen:
        seen.add(current.id)
        current = session.get(Patient, current.merged_into)
    return current.id if current is not None else patient_id


def owner_before_merges(session: Session, system: str, value: str) -> str | None:
    """Whose identifier this was before any merge moved it (how A40 names both patients, even on a resend)."""
    row = session.exec(select(PatientIdentifier).where(
        PatientIdentifier.system == system, PatientIdentifier.value_bidx == identifier_index(system, value))).first()
    if row is None:
        return None
    merges = session.exec(select(PatientMerge).where(PatientMerge.surviving_id == row.patient_id,
                                                     PatientMerge.state == "merged")
                          .order_by(col(PatientMerge.merged_at).desc())).all()
    for record in merges:
        if row.id in record.moved.get("identifiers", []):
            return record.merged_id
    return row.patient_id


def has_open_orders(sessions: SessionFactory, patient_id: str) -> bool:
    """Whether a merge of this patient has running loops to tell (then Temporal must be reachable first)."""
    with sessions() as s:
        return s.exec(select(ExamOrder.accession_number).where(
            ExamOrder.patient_id == patient_id, col(ExamOrder.step).not_in(CLOSED_STEPS))).first() is not None


def moved_open_accessions(sessions: SessionFactory, merge_id: str) -> list[str]:
    """The still-open orders a merge moved (their loops follow an unmerge); NotFound for no such merge."""
    with sessions() as s:
        record = s.get(PatientMerge, merge_id)
        if record is None:
            raise NotFound(f"no merge {merge_id}")
        return [a for a in record.moved.get("orders", [])
                if (o := s.get(ExamOrder, a)) is not None and o.step not in CLOSED_STEPS]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _check(session: Session, surviving: Patient | None, merged: Patient | None,
           surviving_id: str, merged_id: str) -> tuple[Patient, Patient] | MergeResult:
    if surviving_id == merged_id:
        raise Invalid(f"cannot merge patient {merged_id} into itself")
    if surviving is None:
        raise NotFound(f"no surviving patient {surviving_id}")
    if merged is None:
        raise NotFound(f"no patient {merged_id} to merge")
    if merged.merged_into == surviving.id:
        done = session.exec(select(PatientMerge).where(
            PatientMerge.merged_id == merged.id, PatientMerge.surviving_id == surviving.id,
            PatientMerge.state == "merged")).first()
        moved = list(done.moved.get("orders", [])) if done else []
        still_open = [a for a in moved if (o := session.get(ExamOrder, a)) is not None and o.step not in CLOSED_STEPS]
        # The open loops again: a resend after a failed hand-over to the loops completes it (it is idempotent).
        return MergeResult(done.id if done else "", surviving.id, merged.id, already_done=True, moved_orders=moved,
                           open_accessions=still_open)
    if surviving.merged_into:
        if surviving.merged_into == merged.id:
            raise Conflict(f"{surviving.id} was itself merged into {merged.id}: this merge is the inverse of "
                           "that one; unmerge it first if it was wrong")
        raise Conflict(f"{surviving.id} was merged into {resolve(session, surviving.id)}; merge into that ID")
    if merged.merged_into:
        raise Conflict(f"{merged.id} is already merged into {merged.merged_into}")
    return surviving, merged


def merge(sessions: SessionFactory, surviving_id: str, merged_id: str, actor: str, source: str,
          reason: str = "") -> MergeResult:
    with sessions() as s:
        checked = _check(s, s.get(Patient, surviving_id), s.get(Patient, merged_id), surviving_id, merged_id)
        if isinstance(checked, MergeResult):
            return checked
        surviving, merged = checked
        idents = s.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id == merged.id)).all()
        orders = s.exec(select(ExamOrder).where(ExamOrder.patient_id == merged.id)).all()
        worklist = s.exec(select(WorklistEntry).where(WorklistEntry.patient_id == merged.id)).all()
        reviews = s.exec(select(PatientMatchReview).where(
            PatientMatchReview.state == "open",
            ((col(PatientMatchReview.patient_a) == merged.id) & (col(PatientMatchReview.patient_b) == surviving.id))
            | ((col(PatientMatchReview.patient_a) == surviving.id) & (col(PatientMatchReview.patient_b) == merged.id)),
        )).all()
        for row in [*idents, *orders, *worklist]:
            row.patient_id = surviving.id
            s.add(row)
        now = utcnow()
        for review in reviews:
            review.state, review.decided_at, review.decided_by = "same_person", now, actor
            s.add(review)
        merged.merged_into, merged.updated_at = surviving.id, now
        s.add(merged)
        record = PatientMerge(
            id=str(uuid.uuid4()), surviving_id=surviving.id, merged_id=merged.id, actor=actor, source=source,
            reason=reason, merged_at=now,
            moved={"identifiers": [i.id for i in idents], "orders": [o.accession_number for o in orders],
                   "worklist": [w.id for w in worklist], "reviews": [r.id for r in reviews]},
        )
        s.add(record)
        open_accessions = [o.accession_number for o in orders if o.step not in CLOSED_STEPS]
        for order in orders:
            s.add(DomainEvent(
                id=f"merge/{record.id}/{order.accession_number}", accession_number=order.accession_number,
                actor=actor, kind="patient_merged",
                summary=f"patient {merged.id} merged into {surviving.id}",
                detail={"merge_id": record.id, "from": merged.id, "to": surviving.id, "source": source},
            ))
        s.commit()
        return MergeResult(record.id, surviving.id, merged.id, moved_identifiers=len(idents),
                           moved_orders=[o.accession_number for o in orders], open_accessions=open_accessions)


def unmerge(sessions: SessionFactory, merge_id: str, actor: str, now: datetime | None = None) -> MergeResult:
    """Put back exactly what the merge moved; refused after UNMERGE_WINDOW or twice."""
    now = now or utcnow()
    with sessions() as s:
        record = s.get(PatientMerge, merge_id)
        if record is None:
            raise NotFound(f"no merge {merge_id}")
        if record.state != "merged":
            raise Conflict(f"merge {merge_id} was already undone at {record.unmerged_at}")
        if now - _aware(record.merged_at) > UNMERGE_WINDOW:
            raise Conflict(f"merge {merge_id} is older than {UNMERGE_WINDOW.days} days; it can no longer be undone")
        moved = record.moved
        for ident_id in moved.get("identifiers", []):
            if (row := s.get(PatientIdentifier, ident_id)) is not None:
                row.patient_id = record.merged_id
                s.add(row)
        for accession in moved.get("orders", []):
            if (order := s.get(ExamOrder, accession)) is not None:
                order.patient_id = record.merged_id
                s.add(order)
                s.add(DomainEvent(
                    id=f"unmerge/{record.id}/{accession}", accession_number=accession, actor=actor,
                    kind="patient_unmerged", summary=f"merge of {record.merged_id} into {record.surviving_id} undone",
                    detail={"merge_id": record.id},
                ))
        for entry_id in moved.get("worklist", []):
            if (entry := s.get(WorklistEntry, entry_id)) is not None:
                entry.patient_id = record.merged_id
                s.add(entry)
        for review_id in moved.get("reviews", []):
            if (review := s.get(PatientMatchReview, review_id)) is not None:
                review.state, review.decided_at, review.decided_by = "open", None, None
                s.add(review)
        merged = s.get(Patient, record.merged_id)
        assert merged is not None, "patient_merge.merged_id is a foreign key"
        merged.merged_into, merged.updated_at = None, now
        s.add(merged)
        record.state, record.unmerged_at, record.unmerged_by = "unmerged", now, actor
        s.add(record)
        s.commit()
        orders = list(moved.get("orders", []))
        still_open = [a for a in orders if (o := s.get(ExamOrder, a)) is not None and o.step not in CLOSED_STEPS]
        return MergeResult(record.id, record.surviving_id, record.merged_id,
                           moved_identifiers=len(moved.get("identifiers", [])),
                           moved_orders=orders, open_accessions=still_open)
