"""What the report editor shows beside the form (R4.2.6, R7.1.1-R7.1.3): the version the text
starts from, the version it is compared with, the patient's earlier signed reports, and the
critical-value dictionary with the text rules' suggestions.

Which versions: a draft starts empty; a preliminary report and an amendment start from the
version they were opened on (`base_version` in the task's context) and are compared with it;
a review starts from the version under review and is compared with the one before it, so the
senior sees what the radiologist changed in the draft and, while editing, everything since.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from activities.critical import current_dictionary
from api.errors import FieldError
from domain.critical_dictionary import CriticalItemSpec
from domain.critical_text import Suggestion, suggest
from domain.enums import TaskType
from domain.tables import ExamOrder, HumanTask, ReportVersion
from web.phrase_catalogue import SECTIONS
from web.report_diff import Segment, changed, inline_diff

REPORT_TASKS = frozenset({TaskType.report_draft.value, TaskType.report_preliminary.value,
                          TaskType.report_review.value, TaskType.correction_amend.value})
PRIORS = 5


@dataclass
class PriorReport:
    accession_number: str
    procedure: str
    signed_at: datetime | None
    impression: str


@dataclass
class EditorFacts:
    base: ReportVersion | None
    previous: ReportVersion | None
    priors: list[PriorReport]
    items: list[CriticalItemSpec]  # the current dictionary, items for this modality first
    dictionary_version: int | None
    other_from: int = 0  # items[other_from:] do not list this modality


@dataclass
class SectionDiff:
    name: str
    old: str
    segments: list[Segment]
    changed: bool


@dataclass
class EditorView:
    facts: EditorFacts
    diffs: list[SectionDiff] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)


def _pick(versions: list[ReportVersion], task: HumanTask) -> tuple[ReportVersion | None, ReportVersion | None]:
    if task.task_type == TaskType.report_draft.value or not versions:
        return None, None
    by_number = {v.version: v for v in versions}
    key = "version" if task.task_type == TaskType.report_review.value else "base_version"
    wanted = (task.context or {}).get(key)
    base = by_number.get(wanted) if isinstance(wanted, int) else versions[-1]
    base = base or versions[-1]
    if task.task_type != TaskType.report_review.value:
        return base, base
    earlier = [v for v in versions if v.version < base.version]
    return base, (earlier[-1] if earlier else None)


def _priors(session: Session, order: ExamOrder) -> list[PriorReport]:
    """The patient's other signed, valid reports, newest first (prior diagnoses while reporting)."""
    rows = session.exec(
        select(ReportVersion, ExamOrder)
        .join(ExamOrder, col(ExamOrder.accession_number) == col(ReportVersion.accession_number))
        .where(ExamOrder.patient_id == order.patient_id, ExamOrder.accession_number != order.accession_number,
               col(ReportVersion.signed_at).is_not(None), col(ReportVersion.recalled_at).is_(None))
        .order_by(col(ReportVersion.signed_at).desc()).limit(PRIORS)
    ).all()
    return [PriorReport(o.accession_number, o.procedure_name, v.signed_at, v.impression) for v, o in rows]


def editor_facts(session: Session, task: HumanTask, order: ExamOrder | None) -> EditorFacts:
    versions = list(session.exec(select(ReportVersion).where(ReportVersion.accession_number == task.accession_number)
                                 .order_by(col(ReportVersion.version))).all())
    base, previous = _pick(versions, task)
    version, items = current_dictionary()
    modality = order.modality if order else ""
    mine = [i for i in items if i.applies_to(modality)]
    others = [i for i in items if not i.applies_to(modality)]
    return EditorFacts(base=base, previous=previous, priors=_priors(session, order) if order else [],
                       items=mine + others, dictionary_version=version, other_from=len(mine))


def starting_values(facts: EditorFacts) -> dict[str, Any]:
    """The form's first values: the base version's text (nothing for a draft)."""
    if facts.base is None:
        return {}
    return {s: getattr(facts.base, s) or "" for s in SECTIONS}


def view(facts: EditorFacts, values: dict[str, Any], modality: str | None) -> EditorView:
    """Diffs of the text in the form against the compared version, and the text rules' hints."""
    diffs = []
    if facts.previous is not None:
        for s in SECTIONS:
            old = getattr(facts.previous, s) or ""
            segments = inline_diff(old, str(values.get(s) or ""))
            diffs.append(SectionDiff(s, old, segments, changed(segments)))
    text = "\n".join(str(values.get(s) or "") for s in ("findings", "impression"))
    hints = suggest(text, facts.items, modality or None) if text.strip() else []
    return EditorView(facts, diffs, hints)


def dictionary_errors(data: dict[str, Any], items: list[CriticalItemSpec]) -> list[FieldError]:
    """A critical item must be one of the dictionary's (as raising one through the API requires)."""
    code = data.get("critical_item_code")
    if code and code not in {i.code for i in items}:
        return [FieldError(field="critical_item_code", msg=f"unknown critical-value dictionary item {code!r}",
                           type="dictionary")]
    return []
