"""SQLModel tables: the durable rows activities write and the API and inboxes read.

Temporal holds the loop's control state; these rows hold what people and other
systems look at (orders, tasks, reports, events). Activities write them
idempotently (deterministic keys), so a retried activity never duplicates a row.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Patient(SQLModel, table=True):
    id: str = Field(primary_key=True, description="RadLoop patient ID (UUID4), R5.1.2")
    name: str
    sex: str
    birth_date: date = Field(index=True, description="Indexed: the EMPI blocks candidate matches on it")
    created_at: datetime = Field(default_factory=utcnow)
    # EMPI (HL7 issue): matching facts and demographic updates (ADT A08).
    phone: str | None = Field(default=None, description="Display form only (138****5678): number in phone_enc")
    name_key: str | None = Field(default=None, index=True, description="Toneless pinyin, family first (domain.empi)")
    updated_at: datetime | None = None
    merged_into: str | None = Field(default=None, index=True, description="Set when merged: the surviving patient ID")
    # Identifier fields at rest (security.field_crypto): sealed copy and blind index, kept in step by mapper events.
    phone_enc: str | None = Field(default=None, description="AES-256-GCM sealed phone")
    phone_bidx: str | None = Field(default=None, index=True, description="HMAC blind index of the normalised phone")


class PatientIdentifier(SQLModel, table=True):
    __tablename__ = "patient_identifier"
    # One owner per number in a domain, however it was typed: unique on the blind index, never on the number.
    __table_args__ = (UniqueConstraint("system", "value_bidx", name="uq_identifier_system_bidx"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(foreign_key="patient.id", index=True)
    system: str
    value: str = Field(description="Record numbers (MRN) in clear, personal numbers masked (field_crypto)")
    value_enc: str | None = Field(default=None, description="AES-256-GCM sealed value (security.field_crypto)")
    value_bidx: str | None = Field(default=None, index=True, description="HMAC blind index: lookups match on it")


class Department(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    oncall_notify_url: str | None = None


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: str = Field(primary_key=True)
    username: str = Field(unique=True, index=True)
    display_name: str
    role: str = Field(index=True)
    department_id: str | None = None
    notify_url: str | None = None
    api_token_sha256: str | None = Field(default=None, index=True)
    active: bool = True


class Room(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    campus: str
    modalities: str = Field(description="Space-separated DICOM modality codes")
    station_ae_title: str


class ExamOrder(SQLModel, table=True):
    __tablename__ = "exam_order"
    __table_args__ = (
        UniqueConstraint("placer_system", "placer_order_number", name="uq_order_placer"),
    )
    accession_number: str = Field(primary_key=True)
    workflow_id: str = Field(unique=True)
    placer_system: str
    placer_order_number: str
    patient_id: str = Field(foreign_key="patient.id", index=True)
    procedure_code: str
    procedure_name: str
    modality: str
    body_part: str
    laterality: str | None = None
    priority: str
    ordering_clinician_id: str
    ordering_clinician_name: str
    ordering_department: str
    clinical_history: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    clinical_diagnosis: str = ""
    clinical_purpose: str = ""
    special_critical: bool = False
    special_mdro: bool = False
    special_infectious: bool = False
    status: str = Field(default="accepted", description="Order status the HIS sees")
    step: str = Field(default="order_qc", index=True, description="LoopStep")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AccessionCounter(SQLModel, table=True):
    """One row per day; the counter makes accession numbers short and readable."""

    __tablename__ = "accession_counter"
    day: str = Field(primary_key=True)
    last: int = 0


class Appointment(SQLModel, table=True):
    """A booked slot. The unique key makes double-booking impossible; release deletes."""

    __table_args__ = (UniqueConstraint("room_id", "start_at", name="uq_appointment_slot"),)
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(index=True)
    room_id: str = Field(foreign_key="room.id")
    start_at: datetime
    end_at: datetime
    booked_at: datetime = Field(default_factory=utcnow)


class WorklistEntry(SQLModel, table=True):
    """A scheduled procedure step, served to modalities by the DICOM worklist (R4.2.2)."""

    __tablename__ = "worklist_entry"
    # A modality asks for its own steps of a day: equality on modality or station AE plus a start range
    # (integrations/dicom/worklist.py). With single-column indexes SQLite scanned every step of the AE title.
    __table_args__ = (
        Index("ix_worklist_entry_modality_start", "modality", "scheduled_start"),
        Index("ix_worklist_entry_station_start", "station_ae_title", "scheduled_start"),
    )
    id: str = Field(primary_key=True, description="Scheduled Procedure Step ID")
    accession_number: str = Field(index=True)
    patient_id: str = Field(index=True)
    modality: str = Field(index=True)
    station_ae_title: str = Field(index=True)
    room_id: str
    scheduled_start: datetime = Field(index=True)
    procedure_code: str
    procedure_name: str
    study_instance_uid: str
    status: str = Field(default="scheduled", index=True, description="scheduled|in_progress|completed|withdrawn")


class QueueEntry(SQLModel, table=True):
    __tablename__ = "queue_entry"
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(unique=True)
    room_id: str = Field(index=True)
    priority_rank: int = 3
    arrived_at: datetime = Field(default_factory=utcnow)
    state: str = Field(default="waiting", description="waiting|called|done|left")


class HumanTask(SQLModel, table=True):
    """A row per human step; the workflow is the authority, this row feeds inboxes."""

    __tablename__ = "human_task"
    id: str = Field(primary_key=True, description="Deterministic: <workflow_id>/<type>/<n>")
    workflow_id: str = Field(index=True)
    accession_number: str = Field(index=True)
    task_type: str = Field(index=True)
    role: str = Field(index=True, description="Primary role (the first allowed)")
    roles: str = Field(
        default="",
        index=True,
        description="Every role allowed to complete it, space-separated and space-padded "
        "(' radiologist senior_radiologist '), so `roles LIKE '% <role> %'` finds a role's inbox",
    )
    assignee_id: str | None = Field(default=None, index=True)
    state: str = Field(default="open", index=True)
    priority_rank: int = 3
    due_at: datetime | None = None
    form_schema: str
    title: str
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    claimed_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: str | None = None


class ExamRecord(SQLModel, table=True):
    __tablename__ = "exam_record"
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(index=True)
    attempt: int
    started_at: datetime | None = None
    completed_at: datetime | None = None
    technologist_id: str | None = None
    method: str | None = None
    contrast_used: bool = False
    contrast_agent: str | None = None
    contrast_volume_ml: float | None = None
    source: str = "api"
    __table_args__ = (UniqueConstraint("accession_number", "attempt", name="uq_exam_attempt"),)


class ImageQCGrade(SQLModel, table=True):
    __tablename__ = "image_qc_grade"
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(index=True)
    attempt: int
    grade: str
    reason: str | None = None
    graded_by: str
    graded_at: datetime = Field(default_factory=utcnow)
    __table_args__ = (UniqueConstraint("accession_number", "attempt", name="uq_qc_attempt"),)


class ReportVersion(SQLModel, table=True):
    __tablename__ = "report_version"
    __table_args__ = (UniqueConstraint("accession_number", "version", name="uq_report_version"),)
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(index=True)
    version: int
    tier: str
    status: str = "working"
    findings: str = Field(sa_column=Column(Text, nullable=False))
    impression: str = Field(sa_column=Column(Text, nullable=False))
    recommendation: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    source: str = "human"
    author_id: str
    author_role: str
    critical: bool = False
    critical_finding: str | None = None
    comment: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    signed_by: str | None = None
    signed_at: datetime | None = None
    recalled_at: datetime | None = None
    recall_reason: str | None = None


class ReportDistribution(SQLModel, table=True):
    __tablename__ = "report_distribution"
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(index=True)
    report_version: int
    kind: str = Field(description="final | corrected")
    published_at: datetime = Field(default_factory=utcnow)
    __table_args__ = (UniqueConstraint("accession_number", "report_version", name="uq_distribution"),)


class CriticalValue(SQLModel, table=True):
    __tablename__ = "critical_value"
    id: str = Field(primary_key=True, description="= child workflow ID")
    accession_number: str = Field(index=True)
    finding: str
    raised_by: str
    raised_at: datetime
    state: str = "notifying"
    level: int = 0
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_name: str | None = None
    read_back: str | None = None
    ack_channel: str | None = None
    # Dictionary and verification (R7.1.3 (2)(3)); compliance facts (R8.7).
    item_code: str | None = Field(default=None, index=True)
    dictionary_version: int | None = None
    raised_by_role: str | None = None
    ordering_department: str | None = Field(default=None, index=True)
    deadline_seconds: int = 600
    needs_verification: bool = False
    verified_by: str | None = None
    verified_at: datetime | None = None
    first_notified_at: datetime | None = None
    escalations: int = 0
    action_taken: str | None = Field(default=None, sa_column=Column(Text))
    action_by: str | None = None
    action_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: str | None = Field(default=None, description="confirmed | not_confirmed (concordance, R8.7)")
    outcome_note: str | None = None
    outcome_at: datetime | None = None


class NotificationAttempt(SQLModel, table=True):
    __tablename__ = "notification_attempt"
    id: str = Field(primary_key=True, description="Deterministic key; a retry updates, never duplicates")
    accession_number: str = Field(index=True)
    critical_value_id: str | None = Field(default=None, index=True)
    purpose: str
    recipient: str
    channel: str
    attempted_at: datetime = Field(default_factory=utcnow)
    delivered: bool = False
    error: str | None = None


class DomainEvent(SQLModel, table=True):
    """Business facts for the loop timeline (who, what, when, outcome)."""

    __tablename__ = "domain_event"
    id: str = Field(primary_key=True, description="Deterministic key from the activity")
    accession_number: str = Field(index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str
    kind: str
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# Identifier numbers and phones are sealed and blind-indexed on every write, from any edge (R10.3.3).
from security import field_crypto as _field_crypto  # noqa: E402

_field_crypto.install(Patient, PatientIdentifier)
