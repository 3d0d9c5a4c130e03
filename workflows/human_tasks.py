"""Human tasks inside a workflow: open a row, validate completions, wait for them.

The workflow is the authority on which tasks are open; the `human_task` row is
its mirror for inboxes. A completion is a Temporal update whose validator
rejects a wrong role, a stale or unknown task, a double completion or a form
that does not validate, before anything is written to history.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.tasks import CloseTask, OpenTask, close_task, open_task
    from domain.enums import TaskType
    from domain.loop import Actor, OpenTaskView, TaskCompletion, TaskOutcome
    from domain.task_forms import task_spec
    from workflows.db_writes import run_db


class TaskBook:
    """Per-workflow registry of open and completed human tasks."""

    def __init__(self, workflow_id: str, accession_number: str, priority_rank: int) -> None:
        self.workflow_id = workflow_id
        self.accession_number = accession_number
        self.priority_rank = priority_rank
        self.open: dict[str, TaskType] = {}
        self.done: dict[str, TaskCompletion] = {}
        self.counter = 0

    async def open_task(
        self, task_type: TaskType, context: dict[str, Any] | None = None, due: timedelta | None = None
    ) -> str:
        spec = task_spec(task_type)
        self.counter += 1
        task_id = f"{self.workflow_id}/{task_type.value}/{self.counter}"
        now = workflow.now()
        self.open[task_id] = task_type
        await run_db(
            open_task,
            OpenTask(
                task_id=task_id, workflow_id=self.workflow_id, accession_number=self.accession_number,
                task_type=task_type.value, role=spec.roles[0].value, roles=[r.value for r in spec.roles],
                title=spec.title, form_schema=spec.schema_name, priority_rank=self.priority_rank,
                due_at=now + (due or spec.due), created_at=now, context=context or {},
            )
        )
        return task_id

    def validate(self, c: TaskCompletion) -> BaseModel:
        """Raise ApplicationError(type=Conflict|Forbidden|Invalid) unless `c` can complete its task."""
        if c.task_id in self.done:
            raise ApplicationError(f"task {c.task_id} is already completed", type="Conflict")
        task_type = self.open.get(c.task_id)
        if task_type is None:
            raise ApplicationError(f"task {c.task_id} is not open (stale or unknown)", type="Conflict")
        spec = task_spec(task_type)
        if c.actor.role not in spec.roles:
            allowed = ", ".join(r.value for r in spec.roles)
            raise ApplicationError(f"role {c.actor.role.value} may not complete {task_type.value} (allowed: {allowed})", type="Forbidden")
        try:
            return spec.form.model_validate(c.data)
        except ValidationError as err:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in err.errors())
            raise ApplicationError(f"invalid {task_type.value} form: {reasons}", type="Invalid") from None

    def accept(self, c: TaskCompletion) -> None:
        self.open.pop(c.task_id, None)
        self.done[c.task_id] = c

    async def wait(self, task_id: str) -> TaskCompletion:
        await workflow.wait_condition(lambda: task_id in self.done)
        return self.done[task_id]

    def form(self, task_id: str) -> Any:
        c = self.done[task_id]
        return task_spec(self.type_of(task_id)).form.model_validate(c.data)

    def type_of(self, task_id: str) -> TaskType:
        return TaskType(task_id.rsplit("/", 2)[-2])

    def actor(self, task_id: str) -> Actor:
        return self.done[task_id].actor

    async def close(self, task_id: str, state: str = "done") -> None:
        c = self.done.get(task_id)
        self.open.pop(task_id, None)
        await run_db(
            close_task,
            CloseTask(task_id=task_id, state=state, at=workflow.now(),
                      actor_id=c.actor.user_id if c else None, result=c.data if c else None)
        )

    def views(self) -> list[OpenTaskView]:
        return [OpenTaskView(task_id=t, task_type=k.value, roles=task_spec(k).roles) for t, k in self.open.items()]


class TaskCompletionUpdate:
    """The `complete_task` update for a workflow that keeps its tasks in `self.tasks`.

    The validator runs the book's checks (role, stale task, form), then `check_completion`, where
    a workflow adds its own rules (four eyes, read-back, a disposition for every listed patient).
    """

    tasks: TaskBook

    @workflow.update
    def complete_task(self, c: TaskCompletion) -> TaskOutcome:
        self.tasks.accept(c)
        return TaskOutcome(task_id=c.task_id)

    @complete_task.validator
    def _validate_task(self, c: TaskCompletion) -> None:
        self.check_completion(c, self.tasks.validate(c))

    def check_completion(self, c: TaskCompletion, form: Any) -> None:
        """Workflow-specific rules beyond the form; raise ApplicationError(type=Invalid|Forbidden|Conflict)."""
