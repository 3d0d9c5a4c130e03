"""Changes to a running loop's order (HL7 ORC-1 XO) and to its patient (A40 merge): the update payloads.

Both are single pydantic arguments of exam-loop updates, so fields can be added
later with defaults. A change names only what it changes; the loop applies it
before the exam starts and refuses it afterwards.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from domain.loop import Actor

# ExamOrder columns an order change may set (modality and priority move the booking: cancel and reorder).
CHANGEABLE_FIELDS = (
    "procedure_code", "procedure_name", "body_part", "laterality",
    "ordering_clinician_id", "ordering_clinician_name", "ordering_department",
    "clinical_history", "clinical_diagnosis", "clinical_purpose",
    "special_mdro", "special_infectious", "special_critical",
)


class OrderChange(BaseModel):
    """New values by ExamOrder column (only those in CHANGEABLE_FIELDS), who asks and through what."""

    actor: Actor
    changes: dict[str, str | bool | None]
    source: str = Field("", description="e.g. hl7:<MSH-3>:<MSH-10>")
    reason: str = ""


# How the loop answers a change it did not apply because the exam had started (a task was opened).
SENT_TO_REVIEW = "the exam has started: the change went to a person"


class PatientMerged(BaseModel):
    """The loop's patient was merged into another (or the merge undone): follow the surviving ID."""

    merge_id: str
    from_patient_id: str
    to_patient_id: str
    actor: str
    undone: bool = False
