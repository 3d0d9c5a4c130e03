"""Words of the center, used the same everywhere (API, workflows, tables, UI)."""
from __future__ import annotations

from enum import StrEnum


class Sex(StrEnum):
    M = "M"
    F = "F"
    O = "O"  # noqa: E741 - DICOM/HL7 code
    U = "U"


class Priority(StrEnum):
    routine = "routine"
    urgent = "urgent"
    stat = "stat"

    @property
    def rank(self) -> int:
        """Lower is more urgent (used to sort inboxes and queues)."""
        return {"stat": 1, "urgent": 2, "routine": 3}[self.value]


class Role(StrEnum):
    registrar = "registrar"
    nurse = "nurse"
    technologist = "technologist"
    resident = "resident"
    radiologist = "radiologist"
    senior_radiologist = "senior_radiologist"
    clinician = "clinician"
    qc_officer = "qc_officer"
    manager = "manager"
    auditor = "auditor"
    system_admin = "system_admin"
    security_admin = "security_admin"
    his_system = "his_system"  # machine client placing orders


class LoopStep(StrEnum):
    """Where an exam loop stands; shown in UI, API and the LoopStep search attribute."""

    order_qc = "order_qc"
    order_fix = "order_fix"
    scheduling = "scheduling"
    scheduled = "scheduled"
    arrived = "arrived"
    in_exam = "in_exam"
    image_qc = "image_qc"
    reporting = "reporting"
    preliminary = "preliminary"
    review = "review"
    signed = "signed"
    published = "published"
    correction = "correction"
    closed = "closed"
    cancelled = "cancelled"


class TaskState(StrEnum):
    open = "open"
    claimed = "claimed"
    done = "done"
    cancelled = "cancelled"


class TaskType(StrEnum):
    order_fix = "order_fix"
    check_in = "check_in"
    perform_exam = "perform_exam"
    image_qc = "image_qc"
    report_draft = "report_draft"
    report_preliminary = "report_preliminary"
    report_review = "report_review"
    correction_review = "correction_review"
    correction_amend = "correction_amend"
    critical_phone_call = "critical_phone_call"
    critical_verify = "critical_verify"
    critical_response = "critical_response"
    export_approval = "export_approval"  # bulk export of personal data (R10.3.4)
    schedule_exam = "schedule_exam"  # no slot could be booked automatically (R5.3.4)
    order_change_review = "order_change_review"  # an order change (HL7 XO) after the exam started
    daily_close = "daily_close"  # end of day: checked-in patients not finished need a disposition (R6.3)


class ImageGrade(StrEnum):
    """R8.2: 甲乙丙丁 = A excellent, B minor defect, C several defects, D not diagnosable."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


class ReportTier(StrEnum):
    draft = "draft"
    preliminary = "preliminary"
    final = "final"
    amended = "amended"


class ReportVersionStatus(StrEnum):
    working = "working"  # a step on the way to signing
    valid = "valid"  # the one signed version in force
    recalled = "recalled"  # a signed version replaced by a correction


class CriticalState(StrEnum):
    notifying = "notifying"
    acknowledged = "acknowledged"
    phone_call = "phone_call"
    closed = "closed"
