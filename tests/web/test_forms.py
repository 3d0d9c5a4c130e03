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
        assert {f.kind for f in fields} <= {"text", "textarea", "select", "multi", "checkbox", "confirm", "number"}


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
