"""Form payloads of every human task, one pydantic model per task type.

These models are the single source of the JSON Schemas in `ui_schemas/` (the API
serves them so any front end can render the form) and are re-validated inside the
workflow's update validator, so a malformed completion never reaches history.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.booking.rules import MrScreening, PatientType
from domain.enums import ImageGrade, Role, TaskType


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrderFixForm(_Form):
    """The ordering side fixes what order QC found, or withdraws the order."""

    action: Literal["corrected", "cancel"]
    purpose: str | None = Field(None, max_length=1000)
    diagnosis: str | None = Field(None, max_length=1000)
    history: str | None = Field(None, max_length=4000)
    procedure_code: str | None = Field(None, max_length=64)
    procedure_name: str | None = Field(None, max_length=200)
    body_part: str | None = Field(None, max_length=64)
    patient_sex: Literal["M", "F", "O", "U"] | None = None
    comment: str = Field("", max_length=1000)


class CheckInForm(_Form):
    """Identity checked against a document (R6.1.3); the exam's consents and notices signed (R6.1.4).

    The loop refuses a completion that misses one of the `required` items in the task's context.
    """

    identity_document_type: Literal[
        "id_card", "household_register", "officer_id", "hk_macau_permit", "taiwan_permit",
        "passport", "foreign_residence_permit", "hospital_card",
    ]
    identity_verified: Literal[True] = Field(description="The registrar checked the document")
    signed: list[Literal["contrast_consent", "mr_safety_screening", "radiation_notice"]] = Field(
        default_factory=list, description="Consents and notices the patient signed at check-in")
    consent_method: Literal["written", "electronic", "verbal_witnessed"] = "electronic"
    signature_sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$",
                                         description="SHA-256 of the uploaded signature image")
    signature_ref: str = Field("", max_length=200, json_schema_extra={"x-widget": "signature-pad"},
                               description="Reference of the signature image uploaded to "
                                           "POST /api/v1/consent-signatures (the image itself never comes here)")
    witness: str = Field("", max_length=200)
    note: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _signature(self) -> "CheckInForm":
        if self.signed and self.consent_method == "electronic" and not self.signature_sha256:
            raise ValueError("an electronic signature needs signature_sha256")
        if self.signed and self.consent_method == "verbal_witnessed" and not self.witness:
            raise ValueError("a verbal consent needs a witness")
        return self


class ScheduleExamForm(_Form):
    """No slot could be booked by itself: the registrar supplies what was missing (eGFR, MR
    screening, patient type) and retries, picks a segment from a quote, or cancels (R5.3.4)."""

    action: Literal["retry", "choose", "cancel"]
    segment_id: int | None = Field(None, ge=1, description="A segment from POST /api/v1/appointments/quote")
    not_before: datetime | None = Field(None, description="Book no earlier than this")
    patient_type: PatientType = PatientType.outpatient
    egfr: float | None = Field(None, gt=0, le=200, description="mL/min/1.73m2, for contrast exams")
    egfr_at: datetime | None = None
    mr_screening: MrScreening = "not_done"
    reason: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _checks(self) -> "ScheduleExamForm":
        if self.action == "choose" and self.segment_id is None:
            raise ValueError("segment_id is required to choose a time")
        if self.action == "cancel" and not self.reason:
            raise ValueError("a reason is required to cancel")
        if self.egfr is not None and self.egfr_at is None:
            raise ValueError("egfr_at is required with egfr")
        return self


class PerformExamForm(_Form):
    """Completing the exam task records the exam as completed (R6.3 method and contrast)."""

    method: str = Field(min_length=1, max_length=200)
    contrast_used: bool = False
    contrast_agent: str | None = Field(None, max_length=100)
    contrast_volume_ml: float | None = Field(None, ge=0, le=500)

    @model_validator(mode="after")
    def _contrast(self) -> "PerformExamForm":
        if self.contrast_used and not self.contrast_agent:
            raise ValueError("contrast_agent is required when contrast_used is true")
        return self


class ImageQCForm(_Form):
    grade: ImageGrade
    reason: str | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _reason(self) -> "ImageQCForm":
        if self.grade in (ImageGrade.C, ImageGrade.D) and not self.reason:
            raise ValueError("a reason is required for grade C or D")
        return self


class _ReportFields(_Form):
    findings: str = Field(min_length=1, max_length=20000)
    impression: str = Field(min_length=1, max_length=5000)
    recommendation: str = Field("", max_length=5000)


class ReportDraftForm(_ReportFields):
    source: Literal["human", "ai"] = "human"


class ReportPreliminaryForm(_ReportFields):
    pass


class ReportReviewForm(_ReportFields):
    action: Literal["sign", "return"]
    comment: str = Field("", max_length=2000)
    critical: bool = False
    critical_finding: str | None = Field(None, max_length=200)
    critical_item_code: str | None = Field(None, max_length=64, description="Critical-value dictionary item")

    @model_validator(mode="after")
    def _checks(self) -> "ReportReviewForm":
        if self.critical and not self.critical_finding:
            raise ValueError("critical_finding is required when critical is true")
        if self.action == "return" and not self.comment:
            raise ValueError("a comment is required to return a report")
        return self


class CorrectionReviewForm(_Form):
    decision: Literal["accept", "reject"]
    reason: str = Field(min_length=1, max_length=2000)


class CorrectionAmendForm(_ReportFields):
    kind: Literal["simple", "reread"]
    critical: bool = False
    critical_finding: str | None = Field(None, max_length=200)
    critical_item_code: str | None = Field(None, max_length=64, description="Critical-value dictionary item")

    @model_validator(mode="after")
    def _critical(self) -> "CorrectionAmendForm":
        if self.critical and not self.critical_finding:
            raise ValueError("critical_finding is required when critical is true")
        return self


class CriticalPhoneCallForm(_Form):
    """Recorded phone call (R7.1.3 (4)): who called whom, what was read back."""

    called_person_name: str = Field(min_length=1, max_length=200)
    called_person_id: str = Field("", max_length=64)
    phone_number: str = Field("", max_length=40)
    read_back: str = Field(min_length=1, max_length=2000)


class CriticalVerifyForm(_Form):
    """A senior confirms (or rejects) a critical value raised by a junior (R7.1.3 (3))."""

    decision: Literal["confirm", "reject"]
    finding: str | None = Field(None, max_length=200, description="Corrected wording, if any")
    critical_item_code: str | None = Field(None, max_length=64)
    comment: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _reason(self) -> "CriticalVerifyForm":
        if self.decision == "reject" and not self.comment:
            raise ValueError("a comment is required to reject a critical value")
        return self


class CriticalResponseForm(_Form):
    """The clinician records the action taken on the critical value (closes the loop)."""

    action_taken: str = Field(min_length=2, max_length=2000)


class ExportApprovalForm(_Form):
    """An approver (never the requester) lets a bulk export of personal data go, or refuses it (R10.3.4)."""

    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=2000)


class OrderChangeReviewForm(_Form):
    """What a radiologist or registrar did about an order change that came after the exam started."""

    decision: Literal["noted", "amend_report", "declined"]
    comment: str = Field(min_length=1, max_length=2000)


class TicketDisposition(_Form):
    """What became of one unfinished patient: examined after all (`finished`) or gone (`left`, why)."""

    ticket_id: str = Field(min_length=1, max_length=64)
    disposition: Literal["finished", "left"]
    reason: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _reason(self) -> "TicketDisposition":
        if self.disposition == "left" and not self.reason:
            raise ValueError("a reason is required for a patient marked left")
        return self


class DailyCloseForm(_Form):
    """End of day (R6.3): one disposition per patient listed in the task's context; the workflow
    refuses a completion that misses one."""

    dispositions: list[TicketDisposition] = Field(
        min_length=1, max_length=500,
        # the form shows one row per ticket the task lists, keyed by ticket_id (web/forms.py "rows")
        json_schema_extra={"x-rows-from": "tickets", "x-row-key": "ticket_id"})
    comment: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _once(self) -> "DailyCloseForm":
        ids = [d.ticket_id for d in self.dispositions]
        if len(ids) != len(set(ids)):
            raise ValueError("each ticket takes one disposition")
        return self


class TaskSpec(BaseModel):
    task_type: TaskType
    title: str
    roles: list[Role]
    form: type[_Form]
    due: timedelta

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def schema_name(self) -> str:
        return self.task_type.value


_R = Role
TASK_SPECS: dict[TaskType, TaskSpec] = {
    s.task_type: s
    for s in [
        TaskSpec(task_type=TaskType.order_fix, title="Fix order (QC failed)", roles=[_R.clinician], form=OrderFixForm, due=timedelta(hours=4)),
        TaskSpec(task_type=TaskType.check_in, title="Check in patient", roles=[_R.registrar, _R.nurse], form=CheckInForm, due=timedelta(minutes=30)),
        TaskSpec(task_type=TaskType.perform_exam, title="Perform exam", roles=[_R.technologist], form=PerformExamForm, due=timedelta(hours=1)),
        TaskSpec(task_type=TaskType.image_qc, title="Image quality control", roles=[_R.technologist, _R.qc_officer], form=ImageQCForm, due=timedelta(minutes=30)),
        TaskSpec(task_type=TaskType.report_draft, title="Draft report", roles=[_R.resident, _R.radiologist, _R.senior_radiologist], form=ReportDraftForm, due=timedelta(hours=4)),
        TaskSpec(task_type=TaskType.report_preliminary, title="Preliminary report", roles=[_R.radiologist, _R.senior_radiologist], form=ReportPreliminaryForm, due=timedelta(hours=8)),
        TaskSpec(task_type=TaskType.report_review, title="Review and sign report", roles=[_R.senior_radiologist], form=ReportReviewForm, due=timedelta(hours=24)),
        TaskSpec(task_type=TaskType.correction_review, title="Review correction request", roles=[_R.senior_radiologist], form=CorrectionReviewForm, due=timedelta(hours=4)),
        TaskSpec(task_type=TaskType.correction_amend, title="Amend signed report", roles=[_R.radiologist, _R.senior_radiologist], form=CorrectionAmendForm, due=timedelta(hours=8)),
        TaskSpec(task_type=TaskType.critical_verify, title="Verify critical value", roles=[_R.senior_radiologist], form=CriticalVerifyForm, due=timedelta(minutes=2)),
        TaskSpec(task_type=TaskType.critical_response, title="Record action on critical value", roles=[_R.clinician], form=CriticalResponseForm, due=timedelta(minutes=30)),
        TaskSpec(task_type=TaskType.critical_phone_call, title="Phone the clinician: critical value", roles=[_R.radiologist, _R.senior_radiologist, _R.resident, _R.nurse], form=CriticalPhoneCallForm, due=timedelta(minutes=5)),
        TaskSpec(task_type=TaskType.schedule_exam, title="Book a time for the exam (no slot found)", roles=[_R.registrar, _R.nurse], form=ScheduleExamForm, due=timedelta(hours=4)),
        TaskSpec(task_type=TaskType.order_change_review, title="Order changed after the exam started", roles=[_R.radiologist, _R.senior_radiologist, _R.registrar], form=OrderChangeReviewForm, due=timedelta(hours=4)),
        TaskSpec(task_type=TaskType.daily_close, title="Daily close: patients not finished", roles=[_R.registrar, _R.nurse], form=DailyCloseForm, due=timedelta(hours=12)),
        TaskSpec(task_type=TaskType.export_approval, title="Approve bulk data export", roles=[_R.manager], form=ExportApprovalForm, due=timedelta(days=3)),
    ]
}


def task_spec(task_type: TaskType | str) -> TaskSpec:
    return TASK_SPECS[TaskType(task_type)]


def json_schema_for(task_type: TaskType | str) -> dict:
    spec = task_spec(task_type)
    schema = spec.form.model_json_schema()
    schema["$id"] = f"radloop:ui_schemas/{spec.schema_name}.json"
    schema["title"] = spec.title
    return schema
