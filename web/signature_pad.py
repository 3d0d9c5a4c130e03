"""What the check-in page shows above the signature pad (R6.1.4): the texts the patient signs."""
from __future__ import annotations

from domain.consent_notices import notice_text
from domain.enums import TaskType
from domain.tables import HumanTask


def signature_notices(task: HumanTask, lang: str) -> list[tuple[str, str]]:
    """(notice, text) for each consent or notice the check-in task requires; none: no pad."""
    if task.task_type != TaskType.check_in.value:
        return []
    return [(need, notice_text(need, lang)) for need in (task.context or {}).get("required", [])]
