"""Need to know (R7.1.5, R10.3 least privilege): a clinician sees the exams of their own patients.

Imaging staff work on every exam of the center, so their role is their scope. A
clinician's scope is narrower: exams they ordered, or ordered from their
department. Beyond it, a clinician may "break the glass" for one accession: they
state a reason, the grant is an audit record (110113 Security Alert) and lasts
BREAK_GLASS_TTL; every read under it is flagged `access: break_glass` in its own
audit record for the auditor to review. The grant is the audit record itself,
so there is no second place where it could be altered.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlmodel import Session, col, select

from domain.enums import Role
from domain.security_tables import AuditRecord
from domain.tables import ExamOrder, User
from security.audit import AuditEvent, iso

BREAK_GLASS_TTL = timedelta(hours=4)
SCOPED_ROLES = frozenset({Role.clinician})

AccessBasis = Literal["role", "ordering_clinician", "department", "break_glass"]


def break_glass_event(user: User, accession: str, reason: str, source: str, now: datetime) -> AuditEvent:
    return AuditEvent(
        occurred_at=iso(now), user_id=user.id, username=user.username, role=user.role, source=source,
        event_type="break_glass", event_id="110113", action="E", object_type="accession", object_id=accession,
        outcome="success", detail={"reason": reason, "expires_at": iso(now + BREAK_GLASS_TTL)},
    )


def _glass_broken(db: Session, user: User, accession: str, now: datetime) -> bool:
    since = iso(now - BREAK_GLASS_TTL)
    return db.exec(
        select(AuditRecord.seq).where(
            AuditRecord.event_type == "break_glass", AuditRecord.user_id == user.id,
            AuditRecord.object_id == accession, AuditRecord.outcome == "success",
            col(AuditRecord.occurred_at) >= since,
            col(AuditRecord.occurred_at) <= iso(now),
        ).limit(1)
    ).first() is not None


def access_basis(db: Session, user: User, accession: str, now: datetime) -> AccessBasis | None:
    """Why `user` may see exam `accession`, or None when they may not (an unknown accession: 'role',
    so the route itself answers 404)."""
    if user.role not in SCOPED_ROLES:
        return "role"
    order = db.get(ExamOrder, accession)
    if order is None:
        return "role"
    if order.ordering_clinician_id == user.id:
        return "ordering_clinician"
    if user.department_id and order.ordering_department.casefold() == user.department_id.casefold():
        return "department"
    if _glass_broken(db, user, accession, now):
        return "break_glass"
    return None
