"""The schema -> form renderer and back, on the real schemas in ui_schemas/; the catalogue in step."""
from __future__ import annotations

import json
from core.config import REPO_ROOT

from starlette.datastructures import FormData

from api.routes.ui_schemas import load_schema, validate_form
from web import forms
from web.i18n import catalogue


def test_every_schema_renders_with_a_known_kind_for_each_field() -> None:
    for path in sorted((REPO_ROOT / "ui_schemas").glob("*.json")):
        schema = load_schema(path.stem)
        fields = forms.fields_of(schema, "zh-CN")
        assert [f.name for f in fields] == list(schema["properties"]), path
        assert {f.kind for f in fields} <= {"text", "textarea", "select", "multi", "checkbox", "confirm", "number", "rows"}


def test_kinds_and_labels_from_the_perform_exam_and_check_in_schemas() -> None:
    exam = {f.name: f for f in forms.fields_of(load_schema("perform_exam"), "en")}
    assert (exam["method"].kind, exam["method"].required, exam["method"].label) == ("text", True, "Method")
    assert exam["contrast_used"].kind == "checkbox" and exam["contrast_volume_ml"].kind == "number"
    check_in = {f.name: f for f in forms.fields_of(load_schema("check_in"), "zh-CN")}
    assert check_in["identity_verified"].kind == "confirm"
    assert ("id_card", "居民身份证") in check_in["identity_document_type"].options


def test_parse_types_values_and_validation_reasons_land_on_their_fields() -> None:
    schema = load_schema("perform_exam")
    form = FormData([("method", " CT plain "), ("_booleans", "contrast_used"), ("contrast_used", "on"),
                     ("contrast_volume_ml", "eighty")])
    data = forms.parse(schema, form)
    assert data == {"method": "CT plain", "contrast_used": True, "contrast_volume_ml": "eighty"}
    _ok, errors = validate_form("perform_exam", data)
    placed = forms.place(errors, schema)
    assert {e.field for e in placed} == {"contrast_volume_ml"}
    data = forms.parse(schema, FormData([("method", "CT"), ("_booleans", "contrast_used"), ("contrast_used", "on")]))
    _ok, errors = validate_form("perform_exam", data)  # cross-field rule: agent needed with contrast
    assert [e.field for e in forms.place(errors, schema)] == ["contrast_agent"]
    _ok, errors = validate_form("perform_exam", forms.parse(schema, FormData([("_booleans", "contrast_used")])))
    assert [e.field for e in forms.place(errors, schema)] == ["method"]  # "required" reported on the object


def test_unticked_checkbox_is_false_and_a_good_form_is_accepted() -> None:
    schema = load_schema("check_in")
    data = forms.parse(schema, FormData([("identity_document_type", "passport"), ("_booleans", "identity_verified")]))
    assert data["identity_verified"] is False and validate_form("check_in", data)[1]
    data = forms.parse(schema, FormData([("identity_document_type", "passport"), ("identity_verified", "on")]))
    assert validate_form("check_in", data)[1] == []


def test_catalogues_have_the_same_keys_and_cover_every_schema_field() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert set(zh) == set(en)
    for path in (REPO_ROOT / "ui_schemas").glob("*.json"):
        for name in json.loads(path.read_text())["properties"]:
            assert f"field.{name}" in zh, (path.name, name)


def test_choices_through_refs_and_arrays_of_choices_render_and_parse() -> None:
    schedule = {f.name: f for f in forms.fields_of(load_schema("schedule_exam"), "zh-CN")}
    assert schedule["patient_type"].kind == "select" and ("inpatient", "住院") in schedule["patient_type"].options
    schema = load_schema("check_in")
    signed = {f.name: f for f in forms.fields_of(schema, "en")}["signed"]
    assert signed.kind == "multi" and ("radiation_notice", "Radiation notice") in signed.options
    form = FormData([("identity_document_type", "passport"), ("identity_verified", "on"),
                     ("signed", "radiation_notice"), ("signed", "contrast_consent"), ("consent_method", "written")])
    data = forms.parse(schema, form)
    assert data["signed"] == ["radiation_notice", "contrast_consent"]
    assert validate_form("check_in", data)[1] == []
    assert "signed" not in forms.parse(schema, FormData([("identity_verified", "on")]))  # none ticked: the default


TICKETS = {"day": "2026-11-28", "tickets": [
    {"ticket_id": "T1", "accession_number": "A2", "room_id": "CT1", "state": "called", "patient": "李*"},
    {"ticket_id": "T2", "accession_number": "A3", "room_id": None, "state": "waiting", "patient": "王*五"}]}


def test_daily_close_draws_one_row_per_listed_ticket_and_parses_back_in_order() -> None:
    schema = load_schema("daily_close")
    assert forms.row_sources(schema) == {"tickets"}
    field = {f.name: f for f in forms.fields_of(schema, "en", context=TICKETS)}["dispositions"]
    assert field.kind == "rows" and [r.key for r in field.rows] == ["T1", "T2"]
    assert ("State", "Called") in field.rows[0].facts and ("Accession", "A3") in field.rows[1].facts
    assert all(k != "Ticket" for k, _ in field.rows[0].facts)  # the key is sent back hidden, not shown
    assert all(k != "Room" for k, _ in field.rows[1].facts)  # an empty fact is left out
    assert [f.name for f in field.rows[1].inputs] == ["dispositions.1.disposition", "dispositions.1.reason"]
    assert ("left", "Left without the exam") in field.rows[1].inputs[0].options

    form = FormData([("dispositions.0.ticket_id", "T1"), ("dispositions.0.disposition", "finished"),
                     ("dispositions.0.reason", ""), ("dispositions.1.ticket_id", "T2"),
                     ("dispositions.1.disposition", "left"), ("dispositions.1.reason", "  went home ")])
    data = forms.parse(schema, form)
    assert data == {"dispositions": [{"ticket_id": "T1", "disposition": "finished"},
                                     {"ticket_id": "T2", "disposition": "left", "reason": "went home"}]}
    assert validate_form("daily_close", data)[1] == []


def test_daily_close_reasons_land_on_their_row_and_the_chosen_values_stay() -> None:
    schema = load_schema("daily_close")

    def shown(*pairs: tuple[str, str]):
        data = forms.parse(schema, FormData(list(pairs)))
        placed = forms.place(validate_form("daily_close", data)[1], schema)
        return {f.name: f for f in forms.fields_of(schema, "en", data, placed, context=TICKETS)}["dispositions"]

    field = shown(("dispositions.0.ticket_id", "T1"), ("dispositions.0.disposition", "left"),
                  ("dispositions.1.ticket_id", "T2"))
    assert field.rows[1].inputs[0].errors and not field.rows[0].errors  # the missing choice, on its input
    assert field.rows[0].inputs[0].value == "left" and field.errors == []
    field = shown(("dispositions.0.ticket_id", "T1"), ("dispositions.0.disposition", "left"),
                  ("dispositions.1.ticket_id", "T2"), ("dispositions.1.disposition", "finished"))
    assert "reason is required" in field.rows[0].errors[0] and not field.rows[1].errors  # the row's own rule
