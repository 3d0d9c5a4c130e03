"""Imaging rows the DICOM listener writes (R4.2.3, R4.3.2, R6.3): what arrived and from whom.

The files themselves live in the UID-addressed store under the data directory
(`integrations/dicom/store.py`); these rows index them so queries (C-FIND,
QIDO-RS, the loop) never open a file. Keys are DICOM UIDs, so receiving the
same instance twice updates one row instead of adding another.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


class ImagingStudy(SQLModel, table=True):
    __tablename__ = "imaging_study"
    study_instance_uid: str = Field(primary_key=True)
    patient_id: str = Field(default="", index=True, description="Patient ID (0010,0020) as received")
    patient_name: str = Field(default="", index=True)
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = Field(default="", index=True, description="Accession (0008,0050) as received")
    order_accession: str | None = Field(
        default=None, index=True, description="The RadLoop order this study is linked to; None until reconciled"
    )
    study_date: str = Field(default="", index=True)
    study_time: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician_name: str = ""
    modalities: str = Field(default="", description="Space-separated modalities in study")
    specific_character_set: str = ""
    num_series: int = 0
    num_instances: int = 0
    first_received_at: datetime = Field(default_factory=utcnow)
    last_received_at: datetime = Field(default_factory=utcnow, index=True)
    images_received_at: datetime | None = Field(
        default=None, description="When the loop was told the images are complete"
    )


class ImagingSeries(SQLModel, table=True):
    __tablename__ = "imaging_series"
    series_instance_uid: str = Field(primary_key=True)
    study_instance_uid: str = Field(index=True)
    modality: str = Field(default="", index=True)
    series_number: str = ""
    series_description: str = ""
    body_part_examined: str = ""
    num_instances: int = 0


class ImagingInstance(SQLModel, table=True):
    __tablename__ = "imaging_instance"
    sop_instance_uid: str = Field(primary_key=True)
    series_instance_uid: str = Field(index=True)
    study_instance_uid: str = Field(index=True)
    sop_class_uid: str
    transfer_syntax_uid: str
    instance_number: str = ""
    rel_path: str = Field(description="Path under the data directory's DICOM store")
    size_bytes: int
    calling_ae: str = ""
    received_at: datetime = Field(default_factory=utcnow)


class MppsRecord(SQLModel, table=True):
    """A Modality Performed Procedure Step as the modality reported it (R6.3)."""

    __tablename__ = "mpps"
    sop_instance_uid: str = Field(primary_key=True)
    accession_number: str = Field(default="", index=True)
    scheduled_step_id: str = ""
    study_instance_uid: str = Field(default="", index=True)
    status: str = Field(description="IN PROGRESS | COMPLETED | DISCONTINUED")
    calling_ae: str
    performed_series: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False),
        description="[{series_instance_uid, sop_instance_uids: [...]}] from PerformedSeriesSequence",
    )
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False), description="DICOM JSON of the PPS"
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class StorageCommitment(SQLModel, table=True):
    __tablename__ = "storage_commitment"
    transaction_uid: str = Field(primary_key=True)
    calling_ae: str
    requested: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    failed: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", description="pending | reported | report_failed")
    created_at: datetime = Field(default_factory=utcnow)
    reported_at: datetime | None = None


class QuarantinedObject(SQLModel, table=True):
    """Bytes the listener refused, kept with the reason so nothing is silently lost."""

    __tablename__ = "quarantined_object"
    id: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, index=True)
    calling_ae: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    reason: str
    rel_path: str
    size_bytes: int


class ReconciliationItem(SQLModel, table=True):
    """Images or MPPS that match no order; a person links them (or not)."""

    __tablename__ = "reconciliation_item"
    id: str = Field(primary_key=True, description="Deterministic: <kind>:<uid>")
    kind: str = Field(index=True, description="unmatched_study | unmatched_mpps")
    study_instance_uid: str = ""
    accession_number: str = ""
    patient_id: str = ""
    patient_name: str = ""
    reason: str
    state: str = Field(default="open", index=True, description="open | resolved")
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
