"""Task forms: the JSON Schemas in ui_schemas/ are generated from the pydantic forms."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from domain.task_forms import TASK_SPECS, ImageQCForm, PerformExamForm, ReportReviewForm
from scripts.export_ui_schemas import render

UI = Path(__file__).resolve().parents[2] / "ui_schemas"


@pytest.mark.parametrize("task_type", list(TASK_SPECS), ids=lambda t: t.value)
def test_schema_file_matches_the_form(task_type) -> None:
    path = UI / f"{task_type.value}.json"
    assert path.read_text(encoding="utf-8") == render(task_type), "run scripts/export_ui_schemas.py"
    assert json.loads(path.read_text())["additionalProperties"] is False


def test_cross_field_rules() -> None:
    with pytest.raises(ValidationError, match="reason is required"):
        ImageQCForm(grade="D")
    with pytest.raises(ValidationError, match="contrast_agent is required"):
        PerformExamForm(method="CT", contrast_used=True)
    with pytest.raises(ValidationError, match="critical_finding is required"):
        ReportReviewForm(action="sign", findings="f", impression="i", critical=True)
    with pytest.raises(ValidationError, match="comment is required"):
        ReportReviewForm(action="return", findings="f", impression="i")
