"""The report editor (R4.2.6, R7.1): the page a report task (draft, preliminary, review and sign,
amendment) gets instead of the generic form.

It is drawn at the task's own URL by `web.pages.inbox` and completes through the same
path (schema and form model validation, then the loop's `complete_task` update); this
module only draws it: sections with phrase buttons, the compared version with a visible
diff, the critical flag as a choice from the critical-value dictionary with the text
rules' suggestions as hints, the clinical question and the patient's earlier reports.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from api.deps import in_thread
from api.errors import FieldError
from api.routes import tasks as task_api
from api.routes.ui_schemas import load_schema
from core.db import session_scope
from domain.tables import ExamOrder, HumanTask, Patient, User
from security.permissions import Permission, allows
from web import forms, i18n
from web.inbox import age_on, elderly_age_now, special_flags
from web.phrase_catalogue import SECTIONS, phrases_for
from web.render import page
from web.report_editor import EditorFacts, editor_facts, starting_values, view

# Laid out by the editor itself; any other field of the schema is drawn generically after them.
PLACED = (*SECTIONS, "kind", "critical", "critical_item_code", "critical_finding", "comment", "action")


def load_facts(task: HumanTask, order: ExamOrder | None) -> EditorFacts:
    with session_scope() as s:
        return editor_facts(s, task, order)


async def render(request: Request, user: User, task: HumanTask, order: ExamOrder | None, patient: Patient | None,
                 values: dict[str, Any] | None = None, errors: list[FieldError] | None = None,
                 status_code: int = 200, facts: EditorFacts | None = None) -> Response:
    lang = i18n.language_of(request)
    facts = facts or await in_thread(load_facts, task, order)
    if values is None:
        values = starting_values(facts)
    schema = load_schema(task.task_type)
    placed = forms.place(errors or [], schema)
    fields = {f.name: f for f in forms.fields_of(schema, lang, values, placed)}
    age = age_on(patient.birth_date, date.today()) if patient else None
    modality = order.modality if order else ""
    return page(
        request, "report.html", user=user, task=task, order=order, patient=patient, age=age,
        flags=special_flags(order, age, await in_thread(elderly_age_now)), fields=fields, rest=[f for n, f in fields.items() if n not in PLACED],
        form_errors=forms.form_errors(list(fields.values()), placed, lang), booleans=forms.BOOLEANS,
        may_work=allows(user.role, Permission.task_work) and task.state in task_api.LIVE_STATES,
        phrases=phrases_for(lang, modality, order.body_part if order else ""), sections=SECTIONS,
        editor=view(facts, values, modality), status_code=status_code,
        item_names={i.code: i.name_en if lang == "en" else i.name_zh for i in facts.items},
    )
