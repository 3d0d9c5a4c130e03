"""Task forms as JSON Schema (ui_schemas/<task_type>.json), served so any front end can render them.

The same files validate task completions here (Draft 2020-12), next to the
pydantic form models, so what a form accepts and what the API accepts agree.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from typing import Annotated

from fastapi import APIRouter, Depends
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from api.deps import require
from api.errors import ErrorBody, FieldError, field_path
from core.config import REPO_ROOT
from domain.enums import Role, TaskType
from domain.tables import User
from domain.task_forms import TASK_SPECS, task_spec
from security.permissions import Permission
from services.errors import NotFound

router = APIRouter(prefix="/api/v1/ui-schemas", tags=["tasks"])

SCHEMA_DIR = REPO_ROOT / "ui_schemas"

FormReader = Annotated[User, Depends(require(Permission.form_schema_read))]


class UISchemaInfo(BaseModel):
    task_type: TaskType
    title: str
    roles: list[Role]
    url: str


@lru_cache
def load_schema(task_type: str) -> dict[str, Any]:
    try:
        TaskType(task_type)
    except ValueError:
        raise NotFound(f"no task type {task_type!r}") from None
    path = SCHEMA_DIR / f"{task_spec(task_type).schema_name}.json"
    if not path.is_file():
        raise NotFound(f"no UI schema for task type {task_type!r}")
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


@lru_cache
def _validator(task_type: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(task_type))


def validate_form(task_type: str, data: dict[str, Any], prefix: str = "data") -> tuple[dict[str, Any], list[FieldError]]:
    """Check `data` against the task's JSON Schema and its pydantic form.

    Returns the normalised form (as JSON) and the reasons it is invalid; the
    schema's reasons come first, the form model adds cross-field rules the
    schema cannot express (e.g. contrast agent required when contrast used).
    """
    errors = [
        FieldError(
            field=field_path([prefix, *e.absolute_path], drop_location=False),
            msg=e.message,
            type=f"schema.{e.validator}",
        )
        for e in sorted(_validator(task_type).iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]
    try:
        form = task_spec(task_type).form.model_validate(data)
    except ValidationError as err:
        if not errors:
            errors = [
                FieldError(field=field_path([prefix, *e["loc"]], drop_location=False), msg=e["msg"], type=e["type"])
                for e in err.errors(include_input=False)
            ]
        return {}, errors
    return form.model_dump(mode="json"), errors


@router.get("", response_model=list[UISchemaInfo])
def list_ui_schemas(_user: FormReader) -> list[UISchemaInfo]:
    return [
        UISchemaInfo(task_type=t, title=s.title, roles=s.roles, url=f"/api/v1/ui-schemas/{t.value}")
        for t, s in TASK_SPECS.items()
    ]


@router.get("/{task_type}", responses={404: {"model": ErrorBody}})
def get_ui_schema(task_type: str, _user: FormReader) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of one task type's form."""
    return load_schema(task_type)
