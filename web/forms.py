"""A small generic JSON Schema -> HTML form renderer, and the way back (form fields -> JSON).

Covers what `ui_schemas/` uses: string (input or textarea by length), enum (select, also
through a `$ref` to `$defs`), an array of enum items (one checkbox per choice), boolean
(checkbox; `const: true` is a required confirmation), number/integer, and the
`anyOf [X, null]` pydantic writes for optional fields, and "rows": an array of objects marked
`x-rows-from` (a list in the task's context) and `x-row-key`, drawn as a table with one row per
listed item, the item's facts beside the inputs for its other properties. Validation stays with the API's
`validate_form` (schema, then the form model's cross-field rules), so a page accepts
exactly what the API accepts; its reasons are shown next to their fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Any

from starlette.datastructures import FormData

from api.errors import FieldError
from web.i18n import translate, translate_or

TEXTAREA_FROM = 500  # maxLength at or above which a string gets a textarea
BOOLEANS = "_booleans"  # hidden field naming each checkbox shown, so an unticked one means false
_REQUIRED = re.compile(r"^'([^']+)' is a required property")


@dataclass
class Field:
    name: str
    label: str
    kind: str  # text | textarea | select | multi | checkbox | confirm | number | rows
    required: bool
    options: list[tuple[str, str]] = field(default_factory=list)
    value: Any = None
    help: str = ""
    errors: list[str] = field(default_factory=list)
    max_length: int | None = None
    rows: list["Row"] = field(default_factory=list)


@dataclass
class Row:
    """One listed item of a "rows" field: its key (sent back hidden), its facts, its inputs."""

    key_name: str
    key: str
    facts: list[tuple[str, Any]]
    inputs: list[Field]
    errors: list[str] = field(default_factory=list)


def _deref(schema: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` to the schema's own `$defs` (pydantic writes enums that way), merged in."""
    ref = prop.get("$ref", "")
    if ref.startswith("#/$defs/"):
        target = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _base(prop: dict[str, Any], schema: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
    """The non-null branch of `anyOf [X, null]` (references resolved), and whether null is allowed."""
    schema = schema or {}
    prop = _deref(schema, prop)
    if "anyOf" in prop:
        branches = [_deref(schema, b) for b in prop["anyOf"] if b.get("type") != "null"]
        return ({**prop, **branches[0]} if branches else prop), len(branches) < len(prop["anyOf"])
    return prop, False


def _choices(prop: dict[str, Any]) -> list[Any] | None:
    """The allowed items of an array of choices (`type: array, items: {enum: [...]}`), else None."""
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict) and "enum" in prop["items"]:
        return list(prop["items"]["enum"])
    return None


def _row_schema(schema: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any] | None:
    """The item schema of a "rows" array (`x-rows-from` + `x-row-key`), else None."""
    if prop.get("type") != "array" or "x-rows-from" not in prop or "x-row-key" not in prop:
        return None
    return _deref(schema, prop.get("items", {}))


def row_sources(schema: dict[str, Any]) -> set[str]:
    """Context keys shown as the rows of a field (the page does not list them again as facts)."""
    return {p["x-rows-from"] for p in schema.get("properties", {}).values() if "x-rows-from" in p}


def _rows(schema: dict[str, Any], name: str, prop: dict[str, Any], item: dict[str, Any], lang: str,
          context: dict[str, Any], given: Any) -> list[Row]:
    key_name = prop["x-row-key"]
    given_by_key = {str(v.get(key_name)): v for v in given if isinstance(v, dict)} if isinstance(given, list) else {}
    rows = []
    for i, listed in enumerate(context.get(prop["x-rows-from"]) or []):
        key = str(listed.get(key_name, ""))
        sub = {k: v for k, v in item.get("properties", {}).items() if k != key_name}
        inputs = fields_of({**item, "properties": sub, "$defs": schema.get("$defs", {})}, lang,
                           given_by_key.get(key, {}))
        for f in inputs:
            f.name = f"{name}.{i}.{f.name}"
        facts = [(translate_or(lang, f"ctx.{k}", k), translate_or(lang, f"ctx.{k}.{v}", str(v)))
                 for k, v in listed.items() if v not in (None, "") and k != key_name]
        rows.append(Row(key_name=key_name, key=key, facts=facts, inputs=inputs))
    return rows


def fields_of(schema: dict[str, Any], lang: str, values: dict[str, Any] | None = None,
              errors: list[FieldError] | None = None, context: dict[str, Any] | None = None) -> list[Field]:
    """The schema's properties as form fields, in schema order, with values and reasons attached.
    `context` (the task's) supplies the listed items of "rows" fields."""
    values = values or {}
    required = set(schema.get("required", []))
    out = []
    for name, raw in schema.get("properties", {}).items():
        prop, _nullable = _base(raw, schema)
        typ = prop.get("type")
        rows: list[Row] = []
        if (item := _row_schema(schema, prop)) is not None:
            kind, options = "rows", []
            rows = _rows(schema, name, prop, item, lang, context or {}, values.get(name))
        elif "enum" in prop:
            kind = "select"
            options = [(str(v), translate_or(lang, f"enum.{v}", str(v))) for v in prop["enum"]]
        elif (choices := _choices(prop)) is not None:
            kind = "multi"
            options = [(str(v), translate_or(lang, f"enum.{v}", str(v))) for v in choices]
        elif typ == "boolean":
            kind, options = ("confirm" if prop.get("const") is True else "checkbox"), []
        elif typ in ("number", "integer"):
            kind, options = "number", []
        else:
            kind = "textarea" if (prop.get("maxLength") or 0) >= TEXTAREA_FROM else "text"
            options = []
        value = values.get(name, prop.get("default"))
        out.append(Field(
            name=name, label=translate_or(lang, f"field.{name}", prop.get("title", name)), kind=kind,
            required=name in required, options=options, value=value, max_length=prop.get("maxLength"),
            help=translate_or(lang, f"help.{name}", prop.get("description", "")), rows=rows,
        ))
    for e in errors or []:
        target = next((f for f in out if e.field == f.name or e.field.startswith(f"{f.name}.")), None)
        if target is None:
            continue
        row = _row_of(target, e.field)
        if row is None:
            target.errors.append(message(lang, e))
            continue
        path = f"{e.field}.{m.group(1)}" if (m := _REQUIRED.match(e.msg)) else e.field  # "required" is on the row
        sub = next((f for f in row.inputs if path == f.name), None)
        (sub.errors if sub else row.errors).append(message(lang, e))
    return out


def _row_of(f: Field, path: str) -> Row | None:
    """The row a reason's path (`dispositions.3.reason`, `dispositions.3`) points into."""
    parts = path.split(".")
    if f.kind != "rows" or len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) >= len(f.rows):
        return None
    return f.rows[int(parts[1])]


def form_errors(fields: list[Field], errors: list[FieldError], lang: str) -> list[str]:
    """Reasons that belong to no single field (cross-field rules): shown above the form."""
    names = {f.name for f in fields}
    return [message(lang, e) for e in errors
            if not any(e.field == n or e.field.startswith(f"{n}.") for n in names)]


def message(lang: str, e: FieldError) -> str:
    """Common schema reasons in the page's language; anything else in the validator's words."""
    key = f"error.{e.type}"
    text = translate(lang, key)
    return e.msg.removeprefix("Value error, ") if text == key else text


def parse(schema: dict[str, Any], form: FormData) -> dict[str, Any]:
    """Form fields -> the JSON the schema describes. Empty optional fields are left out (defaults
    apply), empty required ones too (so "required" is the reason), numbers that do not parse stay
    text (so "not a number" is the reason). Checkboxes: present = true."""
    required = set(schema.get("required", []))
    shown = set(form.getlist(BOOLEANS))
    data: dict[str, Any] = {}
    for name, raw in schema.get("properties", {}).items():
        prop, _nullable = _base(raw, schema)
        typ = prop.get("type")
        if (item := _row_schema(schema, prop)) is not None:
            data[name] = _parse_rows(schema, name, prop["x-row-key"], item, form)
            continue
        if typ == "boolean":
            if name in form or name in required or name in shown:
                data[name] = form.get(name) in ("on", "true", "1")
            continue
        if _choices(prop) is not None:  # one checkbox per choice; none ticked leaves the default
            picked = [v for v in form.getlist(name) if isinstance(v, str) and v]
            if picked or name in required:
                data[name] = picked
            continue
        value = form.get(name)
        if not isinstance(value, str) or value.strip() == "":
            continue
        value = value.strip()
        if typ in ("number", "integer") and "enum" not in prop:
            try:
                number = float(value)
                data[name] = int(number) if typ == "integer" and number.is_integer() else number
            except ValueError:
                data[name] = value
        else:
            data[name] = value
    return data


def _parse_rows(schema: dict[str, Any], name: str, key_name: str, item: dict[str, Any],
                form: FormData) -> list[dict[str, Any]]:
    """`name.<i>.<prop>` inputs (the key among them, hidden) -> one object per row, in row order."""
    rows = []
    i = 0
    while f"{name}.{i}.{key_name}" in form:
        prefix = f"{name}.{i}."
        sub = FormData([(k.removeprefix(prefix), v) for k, v in form.multi_items() if k.startswith(prefix)])
        rows.append(parse({**item, "$defs": schema.get("$defs", {})}, sub))
        i += 1
    return rows


def place(errors: list[FieldError], schema: dict[str, Any], prefix: str = "data") -> list[FieldError]:
    """Point each reason at its field: paths lose the `data.` prefix; "required" reasons (reported on
    the object) and cross-field rules name their field in the message, the earliest named wins."""
    names = list(schema.get("properties", {}))
    out = []
    for e in errors:
        name = e.field.removeprefix(f"{prefix}.") if e.field != prefix else ""
        if not name:
            m = _REQUIRED.match(e.msg)
            if m:
                name = m.group(1)
            else:
                hits = [(m.start(), n) for n in names if (m := re.search(rf"\b{re.escape(n)}\b", e.msg))]
                name = min(hits)[1] if hits else ""
        out.append(FieldError(field=name, msg=e.msg, type=e.type))
    return out
