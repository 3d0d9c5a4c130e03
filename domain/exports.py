"""Bulk export of personal data (R10.3.4): the approval workflow's contract and its fixed rules.

Every model is the single argument of a workflow, activity, update or query, so
fields can be added later (with defaults) without breaking running exports.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.loop import Actor, OpenTaskView

EXPORT_APPROVAL_WORKFLOW = "ExportApproval"
# DICOM PS3.15 A.5 EventID for every export lifecycle record: 110106 Export.
EXPORT_EVENT_ID = "110106"
# The uses a patient must have consented to before their data leaves for it (R10.3.2).
CONSENT_REQUIRED_USES = frozenset({"research", "teaching"})


def export_workflow_id(export_id: str) -> str:
    return f"export-{export_id}"


class ExportUse(StrEnum):
    research = "research"
    teaching = "teaching"
    quality = "quality"  # internal quality improvement
    legal = "legal"  # a court or regulator's request
    transfer = "transfer"  # continuity of care elsewhere


class ExportState(StrEnum):
    requested = "requested"  # waiting for an approver
    approved = "approved"  # being built
    rejected = "rejected"
    lapsed = "lapsed"  # nobody decided within the approval window
    ready = "ready"  # downloadable until expires_at
    expired = "expired"  # the download link ended; the file is gone
    failed = "failed"


class ExportInput(BaseModel):
    export_id: str
    requested_by: Actor
    purpose: str
    use: ExportUse
    accession_numbers: list[str]
    include_images: bool = True
    approval_seconds: int = Field(3 * 24 * 3600, gt=0, description="How long the request waits for a decision")
    download_seconds: int = Field(24 * 3600, gt=0, description="How long the approved export can be downloaded")


class ExportResult(BaseModel):
    export_id: str
    state: ExportState
    approver_id: str | None = None
    records: int = 0
    instances: int = 0


class ExportStatus(BaseModel):
    export_id: str
    stage: ExportState
    open_tasks: list[OpenTaskView]
    approver_id: str | None = None
    expires_at: datetime | None = None

