"""The inbox and one task: claim, release, complete through the form its JSON Schema describes.

Claim and release are the API's own functions (`api.routes.tasks`); completing checks the
task the same way, validates with the API's `validate_form` and sends the loop's
`complete_task` update. An invalid form comes back with each reason next to its field
(status 422), nothing sent to the loop.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from api.deps import actor_of, in_thread, require
from api.routes import tasks as task_api
from api.routes.consent_signatures import check_in_errors
from api.routes.ui_schemas import load_schema, validate_form
from core.db import session_scope
from domain.loop import TaskCompletion
from domain.tables import ExamOrder, HumanTask, Patient, User
from security.permissions import Permission, allows
from services.errors import NotFound
from services.loop_commands import complete_task
from web import forms, i18n
from web.csrf import require_csrf
from web.inbox import age_on, elderly_age_now, inbox_page, special_flags
from web.pages import report as report_page
from web.render import page
from web.signature_pad import signature_notices
from web.report_editor import REPORT_TASKS, dictionary_errors
from web.route import PageRoute

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)
Reader = Annotated[User, Depends(require(Permission.task_read))]
Worker = Annotated[User, Depends(require(Permission.task_work))]
Csrf = [Depends(require_csrf)]


def _inbox(user: User, page_no: int):
    with session_scope() as s:
        return inbox_page(s, user, page_no)


@router.get("/inbox")
async def inbox(user: Reader, request: Request, page_no: Annotated[int, Query(alias="page", ge=1)] = 1, done: bool = False) -> Response:
    data = await in_thread(_inbox, user, page_no)
    return page(request, "inbox.html", user=user, inbox=data, done=done,
                may_work=allows(user.role, Permission.task_work))


def _task_view(task_id: str, user: User) -> tuple[HumanTask, ExamOrder | None, Patient | None]:
    with session_scope() as s:
        task = s.get(HumanTask, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        if user.role not in task_api.OVERSEERS:
            task_api._may_work_on(task, user)
        order = s.get(ExamOrder, task.accession_number)
        patient = s.get(Patient, order.patient_id) if order else None
        return task, order, patient


def _render_task(request: Request, user: User, task_id: str, task: HumanTask, order: ExamOrder | None,
                 patient: Patient | None, values=None, errors=None, status_code: int = 200) -> Response:
    lang = i18n.language_of(request)
    schema = load_schema(task.task_type)
    placed = forms.place(errors or [], schema)
    fields = forms.fields_of(schema, lang, values, placed, context=task.context)
    from datetime import date

    age = age_on(patient.birth_date, date.today()) if patient else None
    return page(request, "task.html", user=user, task=task, order=order, patient=patient, age=age,
                notices=signature_notices(task, lang),
                flags=special_flags(order, age, elderly_age_now()), fields=fields, form_errors=forms.form_errors(fields, placed, lang),
                may_work=allows(user.role, Permission.task_work) and task.state in task_api.LIVE_STATES,
                row_sources=forms.row_sources(schema),
                status_code=status_code, booleans=forms.BOOLEANS)


@router.get("/tasks/{task_id:path}")
async def task_page(task_id: str, user: Reader, request: Request) -> Response:
    task, order, patient = await in_thread(_task_view, task_id, user)
    if task.task_type in REPORT_TASKS:  # report tasks get the report editor (R4.2.6)
        return await report_page.render(request, user, task, order, patient)
    return _render_task(request, user, task_id, task, order, patient)


def _claim(task_id: str, user: User, release: bool) -> None:
    with session_scope() as s:
        (task_api.release if release else task_api.claim)(task_id, user, s)


def _back_to_task(task_id: str) -> Response:
    return RedirectResponse(f"/web/tasks/{task_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/tasks/{task_id:path}/claim", dependencies=Csrf)
async def claim(task_id: str, user: Worker) -> Response:
    await in_thread(_claim, task_id, user, False)
    return _back_to_task(task_id)


@router.post("/tasks/{task_id:path}/release", dependencies=Csrf)
async def release(task_id: str, user: Worker) -> Response:
    await in_thread(_claim, task_id, user, True)
    return RedirectResponse("/web/inbox", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/tasks/{task_id:path}/complete", dependencies=Csrf)
async def complete(task_id: str, user: Worker, request: Request) -> Response:
    task = await in_thread(task_api._checked_for_completion, task_id, user)
    schema = load_schema(task.task_type)
    values = forms.parse(schema, await request.form())
    data, errors = validate_form(task.task_type, values)
    errors = errors or await in_thread(check_in_errors, task, data)  # the uploaded signature agrees (R6.1.4)
    if task.task_type in REPORT_TASKS:
        _task, order, patient = await in_thread(_task_view, task_id, user)
        facts = await in_thread(report_page.load_facts, task, order)
        errors = errors or dictionary_errors(data, facts.items)
        if errors:
            return await report_page.render(request, user, task, order, patient, values, errors, 422, facts)
    if errors:
        _task, order, patient = await in_thread(_task_view, task_id, user)
        return _render_task(request, user, task_id, task, order, patient, values, errors, status_code=422)
    client = await request.app.state.temporal.get()
    await complete_task(client, task.workflow_id, TaskCompletion(task_id=task.id, actor=actor_of(user), data=data))
    return RedirectResponse("/web/inbox?done=1", status_code=status.HTTP_303_SEE_OTHER)
