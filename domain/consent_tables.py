"""Consent records (R10.3.2): what a patient agreed to, when, recorded by whom, for which purpose.

A record is never edited: withdrawing stamps it (when, by whom, why) and it stays
as evidence of what was in force before. A patient may hold several records for
one scope over time; the newest active one counts (services.consent). A consent signed
by hand on the check-in pad also names the stored signature image and the notice text hash.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Text
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
    # A handwritten electronic signature (R6.1.4): which image, over which text, when, witnessed by whom.
    signature_ref: str | None = Field(default=None, description="consent_signature.id of the stored image")
    signature_sha256: str | None = Field(default=None, description="SHA-256 of the signature PNG")
    notice_sha256: str | None = Field(default=None, description="SHA-256 of the notice texts the patient signed")
    signed_at: datetime | None = Field(default=None, sa_type=_aware())
    signer: str = Field("", description="Who signed: patient | guardian (name)")
    witness_user_id: str | None = Field(default=None, description="The staff user who saw the patient sign")


class ConsentSignature(SQLModel, table=True):
    """A handwritten signature uploaded before check-in completes (R6.1.4).

    The PNG lives content-addressed under the data directory (`consent_signatures/<aa>/<sha256>.png`),
    never in Temporal history: the check-in carries this row's id and the image hash, and the
    loop's activity re-hashes the stored bytes before it records the consent.
    """

    __tablename__ = "consent_signature"
    id: str = Field(primary_key=True, description="UUID4 hex: the reference check-in carries")
    sha256: str = Field(index=True, description="SHA-256 of the PNG bytes (also its file name)")
    size_bytes: int
    width: int
    height: int
    accession_number: str = Field(index=True, description="The exam it was signed for")
    patient_id: str = Field(foreign_key="patient.id", index=True)
    notices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False),
                               description="The notices shown above the pad (CheckInNeed values)")
    notice_lang: str
    notice_sha256: str
    signer: str = Field("patient", description="patient | guardian (name)")
    uploaded_by: str = Field(description="User ID of the staff member at the pad")
    uploaded_at: datetime = Field(default_factory=utcnow, sa_type=_aware())
