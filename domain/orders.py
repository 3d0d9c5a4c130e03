"""The REST/HL7 order contract (shared/spec/interfaces.md) as pydantic models."""
from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.enums import Priority, Sex


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PatientIdentifier(_Strict):
    system: str = Field(min_length=1, max_length=64, description="Identifier domain, e.g. MRN, ID_CARD")
    value: str = Field(min_length=1, max_length=128)


class PatientIn(_Strict):
    identifiers: list[PatientIdentifier] = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)
    sex: Sex
    birth_date: date

    @field_validator("birth_date")
    @classmethod
    def _not_in_future(cls, v: date) -> date:
        if v > date.today():
            raise ValueError("birth_date is in the future")
        if v.year < 1890:
            raise ValueError("birth_date is implausibly old")
        return v


class ProcedureIn(_Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    modality: str = Field(pattern=r"^[A-Z]{2,4}$", description="DICOM modality code, e.g. CT")
    body_part: str = Field(min_length=1, max_length=64)
    laterality: str | None = Field(None, pattern=r"^(L|R|B|U)$")


class OrderingIn(_Strict):
    clinician_id: str = Field(min_length=1, max_length=64)
    clinician_name: str = Field(min_length=1, max_length=200)
    department: str = Field(min_length=1, max_length=100)


class ClinicalIn(_Strict):
    history: str = Field("", max_length=4000)
    diagnosis: str = Field("", max_length=1000)
    purpose: str = Field("", max_length=1000)


class SpecialIn(_Strict):
    critical: bool = False
    mdro: bool = False
    infectious: bool = False


class OrderIn(_Strict):
    """One order from a HIS, REST or HL7 alike."""

    placer_order_number: str = Field(min_length=1, max_length=64)
    placer_system: str = Field("HIS", min_length=1, max_length=64)
    patient: PatientIn
    procedure: ProcedureIn
    priority: Priority = Priority.routine
    ordering: OrderingIn
    clinical: ClinicalIn = ClinicalIn()
    special: SpecialIn = SpecialIn()


class OrderAccepted(BaseModel):
    accession_number: str
    workflow_id: str
    patient_id: str
    status: str


class OrderPublic(BaseModel):
    accession_number: str
    workflow_id: str
    patient_id: str
    placer_system: str
    placer_order_number: str
    status: str
    step: str
    priority: Priority
    procedure: ProcedureIn
    ordering: OrderingIn
    clinical: ClinicalIn
    special: SpecialIn
    patient_name: str
    patient_sex: Sex
    patient_birth_date: date
    room_id: str | None = None
    scheduled_start: str | None = None
