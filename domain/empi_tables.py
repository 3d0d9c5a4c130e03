"""EMPI rows: the review queue of possible duplicates and the record of every merge.

Review queue: pairs of patients that may be one person, waiting for a registrar.

A scored match never merges by itself (domain.empi); it leaves a row here. The
pair is stored once, smaller ID first, so a second registration of either person
does not open the same question twice.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


class PatientMatchReview(SQLModel, table=True):
    __tablename__ = "patient_match_review"
    __table_args__ = (UniqueConstraint("patient_a", "patient_b", name="uq_match_review_pair"),)
    id: str = Field(primary_key=True, description="UUID4")
    patient_a: str = Field(foreign_key="patient.id", index=True)
    patient_b: str = Field(foreign_key="patient.id", index=True)
    score: float
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="open", index=True, description="open | same_person | different_people")
    source: str = Field(description="What raised it, e.g. hl7:<message log id>")
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    decided_by: str | None = None


class PatientMerge(SQLModel, table=True):
    """One merge (A40 or a registrar): what moved, so it can be audited and undone exactly."""

    __tablename__ = "patient_merge"
    id: str = Field(primary_key=True, description="UUID4")
    surviving_id: str = Field(foreign_key="patient.id", index=True)
    merged_id: str = Field(foreign_key="patient.id", index=True)
    actor: str
    source: str = Field(description="hl7:<app>:<MSH-10> or the registrar's request")
    reason: str = ""
    moved: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False),
                                  description="identifier row IDs, accessions, worklist entry IDs that moved")
    state: str = Field(default="merged", index=True, description="merged | unmerged")
    merged_at: datetime = Field(default_factory=utcnow)
    unmerged_at: datetime | None = None
    unmerged_by: str | None = None
