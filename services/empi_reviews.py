"""The registrar's "possible same person" queue (R4.2.3): list the pairs, decide each one.

A scored match never merges by itself (domain.empi); it leaves a pair here.
The registrar either links the two (a merge, services.patient_merge, the
survivor of their choosing) or keeps them separate; either decision is stamped
on the row with who and when, and a decided pair is not decided again.

Identifiers are shown as stored (personal numbers masked, record numbers in clear) unless the
caller may see numbers in full (`unseal=True`, the route decides by role): then they are unsealed
through security.field_crypto.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from domain.empi_tables import PatientMatchReview
from domain.orders import PatientIdentifier as IdentifierIn
from domain.tables import Patient, PatientIdentifier, utcnow
from security.field_crypto import clear_identifier
from services.errors import Conflict, Invalid, NotFound
from services.patient_merge import MergeResult, SessionFactory, merge


class ReviewPatient(BaseModel):
    patient_id: str
    patient_name: str
    sex: str
    birth_date: date | None
    identifiers: list[IdentifierIn]
    merged_into: str | None = None


class ReviewPublic(BaseModel):
    id: str
    score: float
    reasons: list[str]
    state: str
    source: str
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    patients: list[ReviewPatient]
    decision: dict = Field(default_factory=dict, description="The decision's details: reason, merge ID")


class ReviewDecision(BaseModel):
    decision: Literal["link", "keep_separate"]
    reason: str = Field(min_length=1, max_length=1000)
    surviving_patient_id: str | None = Field(None, description="For link: which of the two IDs survives "
                                                                "(default: the one registered first)")


def _patient(session: Session, patient_id: str, unseal: bool) -> ReviewPatient:
    p = session.get(Patient, patient_id)
    assert p is not None, "patient_match_review.patient_a/b are foreign keys"
    idents = session.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id == patient_id)
                          .order_by(col(PatientIdentifier.id))).all()
    return ReviewPatient(patient_id=p.id, patient_name=p.name, sex=p.sex, birth_date=p.birth_date,
                         identifiers=[IdentifierIn(system=i.system,
                                                   value=clear_identifier(i) if unseal else i.value)
                                      for i in idents],
                         merged_into=p.merged_into)


def public(session: Session, row: PatientMatchReview, unseal: bool = False) -> ReviewPublic:
    return ReviewPublic(id=row.id, score=row.score, reasons=list(row.reasons), state=row.state, source=row.source,
                        created_at=row.created_at, decided_at=row.decided_at, decided_by=row.decided_by,
                        patients=[_patient(session, p, unseal) for p in (row.patient_a, row.patient_b)],
                        decision=dict(row.detail.get("decision", {})))


def list_reviews(session: Session, state: str | None, limit: int, offset: int,
                 unseal: bool = False) -> list[ReviewPublic]:
    """Oldest first: the queue in the order it filled."""
    q = select(PatientMatchReview)
    if state:
        q = q.where(PatientMatchReview.state == state)
    rows = session.exec(q.order_by(col(PatientMatchReview.created_at), col(PatientMatchReview.id))
                        .offset(offset).limit(limit)).all()
    return [public(session, r, unseal) for r in rows]


def open_review(sessions: SessionFactory, review_id: str) -> PatientMatchReview:
    with sessions() as s:
        row = s.get(PatientMatchReview, review_id)
        if row is None:
            raise NotFound(f"no review {review_id}")
        if row.state != "open":
            raise Conflict(f"review {review_id} was already decided ({row.state}) by {row.decided_by}")
        return row


def survivor(row: PatientMatchReview, decision: ReviewDecision, sessions: SessionFactory) -> tuple[str, str]:
    """(surviving, merged) for a link: the chosen one, else whichever was registered first."""
    pair = (row.patient_a, row.patient_b)
    if decision.surviving_patient_id is not None:
        if decision.surviving_patient_id not in pair:
            raise Invalid(f"surviving_patient_id must be {pair[0]} or {pair[1]}")
        keep = decision.surviving_patient_id
    else:
        with sessions() as s:
            a, b = s.get(Patient, pair[0]), s.get(Patient, pair[1])
            keep = pair[0] if (a.created_at, a.id) <= (b.created_at, b.id) else pair[1]  # type: ignore[union-attr]
    return keep, pair[1] if keep == pair[0] else pair[0]


def keep_separate(sessions: SessionFactory, review_id: str, actor: str, reason: str) -> None:
    with sessions() as s:
        row = s.get(PatientMatchReview, review_id)
        if row is None or row.state != "open":
            raise Conflict(f"review {review_id} is no longer open")
        row.state, row.decided_at, row.decided_by = "different_people", utcnow(), actor
        row.detail = {**row.detail, "decision": {"decision": "keep_separate", "reason": reason}}
        s.add(row)
        s.commit()


def link(sessions: SessionFactory, review_id: str, surviving: str, merged: str, actor: str,
         reason: str) -> MergeResult:
    """Merge the pair (the merge closes this review as same_person) and note the decision on it."""
    result = merge(sessions, surviving, merged, actor, f"empi-review:{review_id}", reason)
    with sessions() as s:
        row = s.get(PatientMatchReview, review_id)
        if row is not None:
            if row.state == "open":  # merge() closes open pairs it moves; this one may name them inversely
                row.state, row.decided_at, row.decided_by = "same_person", utcnow(), actor
            row.detail = {**row.detail, "decision": {"decision": "link", "reason": reason,
                                                     "merge_id": result.merge_id, "surviving_id": surviving}}
            s.add(row)
            s.commit()
    return result
