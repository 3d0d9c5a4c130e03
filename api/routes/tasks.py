"""Human tasks: each person's inbox, claiming, and completing a step of the loop.

The `human_task` rows are written by the loop's activities and feed inboxes;
claiming is an inbox concern (who is on it), so it changes the row here, with
conditional updates that cannot race. Completing is the loop's business: the
API checks role, state and form (fast, readable refusals), then sends the
`complete_task` update, whose validator remains the authority.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel
from sqlalchemy import or_, update
from sqlmodel import Session, col, func, select

from api.deps import SessionDep, TemporalConnectorDep, actor_of, in_thread, patient_scope, require
from api.errors import ErrorBody, ValidationErrorBody
from api.routes.consent_signatures import check_in_errors
from api.routes.ui_schemas import validate_form
from core.db import session_scope
from domain.enums import Role, TaskState, TaskType
from domain.loop import TaskCompletion, TaskOutcome
from domain.tables import HumanTask, User
from services.errors import Conflict, Forbidden, NotFound
from security.masking import masked_model
from security.permissions import Permission
from services.loop_commands import complete_task

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])

TaskReader = Annotated[User, Depends(require(Permission.task_read))]
TaskWorker = Annotated[User, Depends(require(Permission.task_work))]

# Roles that oversee every inbox (read-only): they may look at any task.
OVERSEERS = {Role.manager, Role.auditor}
LIVE_STATES = (TaskState.open, TaskState.claimed)


def aware(dt: datetime) -> datetime:
    """Timestamps columns hold aware UTC; a query time without an offset is taken as UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def allowed_roles(task: HumanTask) -> set[str]:
    """Every role the row admits (` a b ` padded list), its primary role included."""
    return {task.role, *task.roles.split()}


class TaskPublic(BaseModel):
    id: str
    workflow_id: str
    accession_number: str
    task_type: str
    title: str
    role: str
    roles: list[str]
    assignee_id: str | None
    state: TaskState
    priority_rank: int
    due_at: datetime | None
    overdue: bool
    form_schema_url: str
    context: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime
    claimed_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None

    @classmethod
    def of(cls, t: HumanTask, now: datetime | None = None) -> "TaskPublic":
        now = now or datetime.now(timezone.utc)
        due = t.due_at
        return cls(
            id=t.id, workflow_id=t.workflow_id, accession_number=t.accession_number, task_type=t.task_type,
            title=t.title, role=t.role, roles=sorted(allowed_roles(t)), assignee_id=t.assignee_id,
            state=TaskState(t.state), priority_rank=t.priority_rank, due_at=due,
            overdue=bool(due and due < now and t.state in LIVE_STATES),
            form_schema_url=f"/api/v1/ui-schemas/{t.form_schema}", context=t.context, result=t.result,
            created_at=t.created_at, claimed_at=t.claimed_at, completed_at=t.completed_at,
            completed_by=t.completed_by,
        )


class TaskPage(BaseModel):
    items: list[TaskPublic]
    total: int
    limit: int
    offset: int


class CompleteBody(BaseModel):
    data: dict[str, Any] = {}


def _get(session: Session, task_id: str) -> HumanTask:
    task = session.get(HumanTask, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


def _may_work_on(task: HumanTask, user: User) -> None:
    if user.role not in allowed_roles(task) and task.assignee_id != user.id:
        raise Forbidden(f"task {task.id} is for {', '.join(sorted(allowed_roles(task)))}, not {user.role}")


def _is_live(task: HumanTask) -> None:
    if task.state not in LIVE_STATES:
        raise Conflict(f"task {task.id} is {task.state}")


@router.get("", response_model=TaskPage)
def inbox(
    user: TaskReader,
    session: SessionDep,
    state: Annotated[list[TaskState], Query()] = list(LIVE_STATES),
    claimed: Literal["mine", "unclaimed", "any"] = "any",
    task_type: TaskType | None = None,
    due_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TaskPage:
    """Tasks for the caller's role (or assigned to the caller), most urgent first, then earliest due."""
    mine = or_(
        col(HumanTask.roles).like(f"% {user.role} %"),
        col(HumanTask.role) == user.role,
        col(HumanTask.assignee_id) == user.id,
    )
    conds = [mine, col(HumanTask.state).in_([s.value for s in state])]
    if claimed == "mine":
        conds.append(col(HumanTask.assignee_id) == user.id)
    elif claimed == "unclaimed":
        conds.append(col(HumanTask.assignee_id).is_(None))
    if task_type is not None:
        conds.append(col(HumanTask.task_type) == task_type.value)
    if due_before is not None:
        conds.append(col(HumanTask.due_at) < aware(due_before))
    total = session.exec(select(func.count()).select_from(HumanTask).where(*conds)).one()
    rows = session.exec(
        select(HumanTask)
        .where(*conds)
        .order_by(
            col(HumanTask.priority_rank),
            col(HumanTask.due_at).is_(None),  # undated tasks after dated ones, on every database
            col(HumanTask.due_at),
            col(HumanTask.created_at),
            col(HumanTask.id),
        )
        .offset(offset)
        .limit(limit)
    ).all()
    now = datetime.now(timezone.utc)
    return masked_model(TaskPage(items=[TaskPublic.of(t, now) for t in rows], total=total, limit=limit, offset=offset),
                        user.role)


# Task IDs are `<workflow_id>/<type>/<n>`: the `path` converter lets them carry their slashes.
@router.get("/{task_id:path}", response_model=TaskPublic, responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}})
def get_task(task_id: str, user: TaskReader, session: SessionDep, request: Request) -> TaskPublic:
    """One task; a clinician also needs to know its patient (R7.1.5: their department's, assigned to them, or break-glass)."""
    task = _get(session, task_id)
    if user.role not in OVERSEERS:
        _may_work_on(task, user)
    if task.accession_number and task.assignee_id != user.id:  # a task given to them is theirs to see
        patient_scope(task.accession_number, request, user)
    return masked_model(TaskPublic.of(task), user.role)


_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "The caller's role may not work on this task"},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody, "description": "Done, cancelled, or claimed by someone else"},
}


def _refuse_claim(task: HumanTask, user: User) -> None:
    _is_live(task)
    if task.assignee_id not in (None, user.id):
        raise Conflict(f"task {task.id} is claimed by {task.assignee_id}")


@router.post("/{task_id:path}/claim", response_model=TaskPublic, responses=_REFUSALS)
def claim(task_id: str, user: TaskWorker, session: SessionDep) -> TaskPublic:
    """Take a task so colleagues see someone is on it; claiming one's own claim again is a no-op."""
    task = _get(session, task_id)
    _may_work_on(task, user)
    _refuse_claim(task, user)
    if task.state == TaskState.claimed:
        return masked_model(TaskPublic.of(task), user.role)
    won = session.execute(
        update(HumanTask)
        .where(
            col(HumanTask.id) == task_id,
            col(HumanTask.state) == TaskState.open.value,
            or_(col(HumanTask.assignee_id).is_(None), col(HumanTask.assignee_id) == user.id),
        )
        .values(state=TaskState.claimed.value, assignee_id=user.id, claimed_at=datetime.now(timezone.utc))
    ).rowcount
    session.commit()
    session.refresh(task)
    if not won:  # someone else got there between our read and our write
        _refuse_claim(task, user)
    return masked_model(TaskPublic.of(task), user.role)


@router.post("/{task_id:path}/release", response_model=TaskPublic, responses=_REFUSALS)
def release(task_id: str, user: TaskWorker, session: SessionDep) -> TaskPublic:
    """Put a claimed task back in the role's inbox; only the claimant may."""
    task = _get(session, task_id)
    _is_live(task)
    if task.state != TaskState.claimed:
        raise Conflict(f"task {task.id} is not claimed")
    if task.assignee_id != user.id:
        raise Forbidden(f"only the claimant ({task.assignee_id}) may release task {task.id}")
    released = session.execute(
        update(HumanTask)
        .where(
            col(HumanTask.id) == task_id,
            col(HumanTask.state) == TaskState.claimed.value,
            col(HumanTask.assignee_id) == user.id,
        )
        .values(state=TaskState.open.value, assignee_id=None, claimed_at=None)
    ).rowcount
    session.commit()
    session.refresh(task)
    if not released:
        raise Conflict(f"task {task.id} changed meanwhile (now {task.state})")
    return masked_model(TaskPublic.of(task), user.role)


def _checked_for_completion(task_id: str, user: User) -> HumanTask:
    with session_scope() as session:
        task = _get(session, task_id)
        _may_work_on(task, user)
        _is_live(task)
        if task.state == TaskState.claimed and task.assignee_id not in (None, user.id):
            raise Conflict(f"task {task.id} is claimed by {task.assignee_id}")
        return task


@router.post(
    "/{task_id:path}/complete",
    response_model=TaskOutcome,
    responses={**_REFUSALS, 422: {"model": ValidationErrorBody, "description": "The form is invalid"}},
)
async def complete(
    task_id: str, body: CompleteBody, user: TaskWorker, connector: TemporalConnectorDep
) -> TaskOutcome:
    """Validate the form, then hand it to the loop; the loop's activity marks the row done."""
    task = await in_thread(_checked_for_completion, task_id, user)
    data, errors = validate_form(task.task_type, body.data)
    errors = errors or await in_thread(check_in_errors, task, data)  # the uploaded signature agrees (R6.1.4)
    if errors:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[e.model_dump() for e in errors]
        )
    client = await connector.get()
    return await complete_task(
        client, task.workflow_id, TaskCompletion(task_id=task.id, actor=actor_of(user), data=data)
    )
