"""Need to know (R7.1.5, R10.3 least privilege): a clinician sees the exams of their own patients.

Imaging staff work on every exam of the center, so their role is their scope. A
clinician's scope is narrower: exams they ordered, or ordered from their
department. Beyond it, a clinician may "break the glass" for one accession: they
state a reason, the grant is an audit record (110113 Security Alert) and lasts
BREAK_GLASS_TTL; every read under it is flagged `access: break_glass` in its own
audit record for the auditor to review. The grant is the audit record itself,
so there is no second place where it could be altered.

Records kept per patient rather than per exam (consents) follow the same rule one
level up: the patient is the clinician's when one of the patient's exams is, and
the glass is broken for the patient itself or for one of their exams. Images
follow their study's order; a study linked to no order is nobody's patient yet,
so it stays closed to clinicians until reconciled.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, or_, true
from sqlmodel import Session, col, select

from domain.enums import Role
from domain.imaging_tables import ImagingStudy
from domain.security_tables import AuditRecord
from domain.tables import CriticalValue, ExamOrder, NotificationAttempt, Patient, User
from security.audit import AuditEvent, iso

BREAK_GLASS_TTL = timedelta(hours=4)
SCOPED_ROLES = frozenset({Role.clinician})

AccessBasis = Literal["role", "ordering_clinician", "department", "notified", "break_glass"]
GlassObject = Literal["accession", "patient"]
_RANK: dict[str, int] = {"ordering_clinician": 0, "department": 1}


def break_glass_event(user: User, object_id: str, reason: str, source: str, now: datetime,
                      object_type: GlassObject = "accession") -> AuditEvent:
    return AuditEvent(
        occurred_at=iso(now), user_id=user.id, username=user.username, role=user.role, source=source,
        event_type="break_glass", event_id="110113", action="E", object_type=object_type, object_id=object_id,
        outcome="success", detail={"reason": reason, "expires_at": iso(now + BREAK_GLASS_TTL)},
    )


def _glass_broken(db: Session, user: User, accession: str, now: datetime, patient_id: str | None = None,
                  accessions: tuple[str, ...] = ()) -> bool:
    """A grant in force for `accession` (or for any of `accessions`, or for the patient itself)."""
    since = iso(now - BREAK_GLASS_TTL)
    targets = [and_(AuditRecord.object_type == "accession",
                    col(AuditRecord.object_id).in_(sorted({accession, *accessions} - {""})))]
    if patient_id is not None:
        targets.append(and_(AuditRecord.object_type == "patient", AuditRecord.object_id == patient_id))
    return db.exec(
        select(AuditRecord.seq).where(
            AuditRecord.event_type == "break_glass", AuditRecord.user_id == user.id,
            or_(*targets), AuditRecord.outcome == "success",
            col(AuditRecord.occurred_at) >= since,
            col(AuditRecord.occurred_at) <= iso(now),
        ).limit(1)
    ).first() is not None


def _order_basis(user: User, order: ExamOrder) -> AccessBasis | None:
    if order.ordering_clinician_id == user.id:
        return "ordering_clinician"
    if user.department_id and order.ordering_department.casefold() == user.department_id.casefold():
        return "department"
    return None


def access_basis(db: Session, user: User, accession: str, now: datetime) -> AccessBasis | None:
    """Why `user` may see exam `accession`, or None when they may not (an unknown accession: 'role',
    so the route itself answers 404)."""
    if user.role not in SCOPED_ROLES:
        return "role"
    order = db.get(ExamOrder, accession)
    if order is None:
        return "role"
    basis = _order_basis(user, order)
    if basis is not None:
        return basis
    if _glass_broken(db, user, accession, now):
        return "break_glass"
    return None


def patient_access_basis(db: Session, user: User, patient_id: str, now: datetime) -> AccessBasis | None:
    """Why `user` may see the records kept for patient `patient_id` (consents), or None.

    One of the patient's exams within the clinician's scope opens the patient; so does a
    break-glass grant for the patient or for one of their exams. An unknown patient: 'role'
    (the route answers 404)."""
    if user.role not in SCOPED_ROLES:
        return "role"
    if db.get(Patient, patient_id) is None:
        return "role"
    orders = db.exec(select(ExamOrder).where(ExamOrder.patient_id == patient_id)).all()
    bases = [b for o in orders if (b := _order_basis(user, o)) is not None]
    if bases:
        return min(bases, key=_RANK.__getitem__)
    accessions = tuple(o.accession_number for o in orders)
    if _glass_broken(db, user, "", now, patient_id=patient_id, accessions=accessions):
        return "break_glass"
    return None


def study_access_basis(db: Session, user: User, study_instance_uid: str, now: datetime) -> AccessBasis | None:
    """Why `user` may see the images of a study: those of its order (linked, else by the accession
    it arrived with). A study with no order behind it is closed to clinicians; unknown: 'role' (404)."""
    if user.role not in SCOPED_ROLES:
        return "role"
    study = db.get(ImagingStudy, study_instance_uid)
    if study is None:
        return "role"
    accession = study.order_accession or study.accession_number
    if not accession or db.get(ExamOrder, accession) is None:
        return None
    return access_basis(db, user, accession, now)


def critical_value_basis(db: Session, user: User, accession: str, critical_value_id: str,
                         now: datetime) -> AccessBasis | None:
    """Why `user` may see a critical value: the exam's need to know, or having been paged for it
    on the escalation ladder (a backup clinician or department head of another department must
    see what they are asked to acknowledge)."""
    basis = access_basis(db, user, accession, now)
    if basis is not None:
        return basis
    paged = _paged_as(user)
    hit = db.exec(select(NotificationAttempt.id).where(
        NotificationAttempt.critical_value_id == critical_value_id,
        col(NotificationAttempt.recipient).in_(paged)).limit(1)).first()
    return "notified" if hit is not None else None


def _paged_as(user: User) -> set[str]:
    return {f"user:{user.id}"} | ({f"department:{user.department_id}"} if user.department_id else set())


def visible_critical_values(user: User, now: datetime) -> ColumnElement[bool]:
    """`critical_value_basis` as one SQL condition, for lists that page in the database: the query
    must outer-join ExamOrder on the accession. Agrees row for row with the per-row check (tested)."""
    if user.role not in SCOPED_ROLES:
        return true()
    mine = [col(ExamOrder.accession_number).is_(None), ExamOrder.ordering_clinician_id == user.id]
    if user.department_id:
        mine.append(func.lower(ExamOrder.ordering_department) == user.department_id.casefold())
    glass = select(AuditRecord.object_id).where(
        AuditRecord.event_type == "break_glass", AuditRecord.user_id == user.id,
        AuditRecord.object_type == "accession", AuditRecord.outcome == "success",
        col(AuditRecord.occurred_at) >= iso(now - BREAK_GLASS_TTL), col(AuditRecord.occurred_at) <= iso(now))
    paged = select(NotificationAttempt.critical_value_id).where(
        col(NotificationAttempt.recipient).in_(sorted(_paged_as(user))),
        col(NotificationAttempt.critical_value_id).is_not(None))
    return or_(*mine, col(CriticalValue.accession_number).in_(glass), col(CriticalValue.id).in_(paged))
