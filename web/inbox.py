"""What an inbox shows: a role's open tasks with the exam and patient beside them, most urgent first.

One query joins task, order and patient (left joins: a task without an order row still
shows), sorted like the API's inbox (priority, then due time, undated last) and paged,
so the page costs the same with 10 or 10,000 open tasks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from domain.enums import TaskState
from domain.queueing.policy import CarePolicy
from domain.tables import ExamOrder, HumanTask, Patient, User

PAGE_SIZE = 100
LIVE = (TaskState.open.value, TaskState.claimed.value)


def elderly_age(policy: CarePolicy) -> int:
    """"Elderly" as the care policy in force defines it, so inbox and queue agree after a publish."""
    return min((r.min_age for r in policy.rules if r.min_age is not None), default=80)


def elderly_age_now(session: Session | None = None) -> int:
    from core.db import session_scope
    from services.care_policy import current_policy

    if session is not None:
        return elderly_age(current_policy(session))
    with session_scope() as s:
        return elderly_age(current_policy(s))


@dataclass
class InboxRow:
    task: HumanTask
    patient_name: str = ""
    sex: str = ""
    age: int | None = None
    procedure: str = ""
    priority: str = "routine"
    overdue: bool = False
    flags: list[str] = field(default_factory=list)


@dataclass
class InboxPage:
    rows: list[InboxRow]
    total: int
    page: int
    pages: int


def age_on(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def special_flags(order: ExamOrder | None, age: int | None, elderly_from: int) -> list[str]:
    """Special patients (R6.1.7): critically ill, MDRO, infectious, elderly, emergency."""
    flags = []
    if order is not None:
        if order.special_critical:
            flags.append("critical")
        if order.special_mdro:
            flags.append("mdro")
        if order.special_infectious:
            flags.append("infectious")
        if order.priority == "stat":
            flags.append("emergency")
    if age is not None and age >= elderly_from:
        flags.append("elderly")
    return flags


def _mine(user: User):
    return or_(col(HumanTask.roles).like(f"% {user.role} %"), col(HumanTask.role) == user.role,
               col(HumanTask.assignee_id) == user.id)


def _aware(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def inbox_page(session: Session, user: User, page: int = 1, now: datetime | None = None) -> InboxPage:
    now = now or datetime.now(timezone.utc)
    conds = [_mine(user), col(HumanTask.state).in_(LIVE)]
    total = session.exec(select(func.count()).select_from(HumanTask).where(*conds)).one()
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    stmt = (
        select(HumanTask, ExamOrder, Patient)
        .join(ExamOrder, col(ExamOrder.accession_number) == col(HumanTask.accession_number), isouter=True)
        .join(Patient, col(Patient.id) == col(ExamOrder.patient_id), isouter=True)
        .where(*conds)
        .order_by(col(HumanTask.priority_rank), col(HumanTask.due_at).is_(None), col(HumanTask.due_at),
                  col(HumanTask.created_at), col(HumanTask.id))
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    )
    today = now.date()
    elderly_from = elderly_age_now(session)
    rows = []
    for task, order, patient in session.exec(stmt).all():
        age = age_on(patient.birth_date, today) if patient else None
        due = _aware(task.due_at)
        rows.append(InboxRow(
            task=task, patient_name=patient.name if patient else "", sex=patient.sex if patient else "", age=age,
            procedure=order.procedure_name if order else "", priority=order.priority if order else "routine",
            overdue=bool(due and due < now), flags=special_flags(order, age, elderly_from),
        ))
    return InboxPage(rows=rows, total=total, page=page, pages=pages)
