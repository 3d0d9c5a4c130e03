"""Consent records (R10.3.2): what a patient agreed to, when, recorded by whom, for which purpose.

A record is never edited: withdrawing stamps it (when, by whom, why) and it stays
as evidence of what was in force before. A patient may hold several records for
one scope over time; the newest active one counts (services.consent).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


def _aware() -> DateTime:
    return DateTime(timezone=True)


class ConsentRecord(SQLModel, table=True):
    __tablename__ = "consent_record"
    id: str = Field(primary_key=True, description="UUID4")
    patient_id: str = Field(foreign_key="patient.id", index=True)
    scope: str = Field(index=True, description="What is consented to (services.consent.ConsentScope)")
    purpose: str = Field(sa_column=Column(Text, nullable=False), description="For which purpose, as explained")
    decision: str = Field(description="granted | refused")
    method: str = Field(description="written | electronic | verbal_witnessed")
    accession_number: str | None = Field(default=None, index=True, description="The exam it belongs to, if any")
    given_at: datetime = Field(sa_type=_aware(), description="When the patient gave (or refused) it")
    valid_until: datetime | None = Field(default=None, sa_type=_aware())
    recorded_by: str = Field(description="User ID who recorded it")
    recorder_role: str
    witness: str = ""
    document_ref: str = Field("", description="Scan or signed-form reference")
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=_aware())
    state: str = Field(default="active", index=True, description="active | withdrawn")
    withdrawn_at: datetime | None = Field(default=None, sa_type=_aware())
    withdrawn_by: str | None = None
    withdrawal_reason: str = ""
