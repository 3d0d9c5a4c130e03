"""The exam loop's contract: workflow input, update payloads and status query.

Every model is the single argument of a workflow, update or query, so fields can
be added later (with defaults) without breaking running loops.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from domain.enums import ImageGrade, LoopStep, Priority, Role

EXAM_LOOP_WORKFLOW = "ExamLoop"
CRITICAL_VALUE_WORKFLOW = "CriticalValue"


def exam_loop_workflow_id(accession_number: str) -> str:
    """Workflow IDs derive from the business key so an order can never run twice."""
    return f"exam-loop-{accession_number}"


def critical_value_workflow_id(accession_number: str, n: int) -> str:
    return f"critical-{accession_number}-{n}"


class Actor(BaseModel):
    """Who performs a human action; set by the API from the authenticated user."""

    user_id: str
    role: Role
    name: str = ""


class ExamLoopInput(BaseModel):
    accession_number: str
    patient_id: str
    priority: Priority
    modality: str
    ordering_clinician_id: str
    ordering_department: str
    special_critical: bool = False
    correction_window_days: float = Field(30, description="How long a signed report stays open to correction")


class TaskCompletion(BaseModel):
    task_id: str
    actor: Actor
    data: dict[str, Any] = Field(default_factory=dict)


class TaskOutcome(BaseModel):
    task_id: str
    accepted: bool = True
    next_step: LoopStep | None = None


class PerformedSeriesRef(BaseModel):
    """One series the modality reports it made (MPPS Performed Series Sequence)."""

    series_instance_uid: str
    num_instances: int = Field(0, ge=0)


class ExamEvent(BaseModel):
    """Exam progress from the API or DICOM MPPS (live or replayed by reconciliation): same update either way."""

    kind: Literal["started", "completed", "discontinued"]
    actor: Actor
    method: str | None = None
    contrast_used: bool = False
    contrast_agent: str | None = None
    contrast_volume_ml: float | None = None
    reason: str | None = None
    source: Literal["api", "mpps", "storage"] = "api"
    station_ae: str | None = Field(None, description="MPPS Performed Station AE Title")
    performed_at: datetime | None = Field(
        None, description="When the modality says the step happened (MPPS start / end); absent: the loop's clock")
    performed_series: list[PerformedSeriesRef] = Field(default_factory=list, description="MPPS series, on completion")


class ImagesReceived(BaseModel):
    """The DICOM side's decision that a study's images are all in (MPPS references or stability)."""

    actor: Actor
    study_instance_uid: str
    num_series: int = Field(ge=0)
    num_instances: int = Field(ge=0)
    how: str = Field(description="mpps | stable")
    method: str | None = None


class RescheduleRequest(BaseModel):
    actor: Actor
    reason: str = Field(min_length=1)
    not_before: datetime | None = None


class CancelRequest(BaseModel):
    actor: Actor
    reason: str = Field(min_length=1)


class CorrectionRequest(BaseModel):
    actor: Actor
    reason: str = Field(min_length=1)


class ActionAck(BaseModel):
    accepted: bool = True
    step: LoopStep
    detail: str = ""


class OpenTaskView(BaseModel):
    task_id: str
    task_type: str
    roles: list[Role]


class LoopStatus(BaseModel):
    accession_number: str
    step: LoopStep
    open_tasks: list[OpenTaskView]
    exam_attempt: int
    last_grade: ImageGrade | None = None
    report_version: int
    valid_report_version: int | None = None
    critical_value_ids: list[str]
    cancelled: bool
    correction_count: int


# ---- critical value child workflow -------------------------------------------------


class EscalationLevel(BaseModel):
    """One rung of the ladder: whom to notify and how long to wait for an ack."""

    name: str
    notify: Literal[
        "ordering_clinician", "backup_clinician", "department_head", "duty_officer",
        "department_oncall", "phone_call_task",
    ]
    wait_seconds: int = Field(gt=0)


class CriticalValueInput(BaseModel):
    critical_value_id: str
    accession_number: str
    finding: str
    raised_by: Actor
    ordering_clinician_id: str
    ordering_department: str
    ladder: list[EscalationLevel]
    # Added with the dictionary (defaults keep older histories replaying unchanged).
    item_code: str | None = None
    item_name: str | None = None
    dictionary_version: int | None = None
    deadline_seconds: int = 600
    response_seconds: int | None = Field(None, description="None: no clinical-response stage (older loops)")
    needs_verification: bool = False
    verify_seconds: int = 120


class CriticalRaise(BaseModel):
    """A critical finding raised during the exam or reporting by whoever finds it first."""

    actor: Actor
    finding: str = Field(min_length=1, max_length=200)
    item_code: str | None = Field(None, max_length=64)


class CriticalPlan(BaseModel):
    """What the dictionary in force says for one finding."""

    item_code: str
    item_name: str
    dictionary_version: int | None
    deadline_seconds: int
    response_seconds: int
    ladder: list[EscalationLevel]


class CriticalAck(BaseModel):
    """Acknowledgment with read-back: the clinician says who they are and what they heard."""

    actor: Actor
    clinician_name: str = Field(min_length=1)
    read_back: str = Field(min_length=1)


class CriticalStatus(BaseModel):
    critical_value_id: str
    level: int
    level_name: str
    acknowledged: bool
    acked_by: str | None = None
    phone_task_id: str | None = None
    open_tasks: list[OpenTaskView] = Field(default_factory=list)
    stage: str = "notifying"


class CriticalResult(BaseModel):
    critical_value_id: str
    acknowledged_by: str
    channel: Literal["ack", "phone_call", "not_confirmed"]
    level: int
    escalations: int
