"""The procedure catalogue and the scheduled procedure steps an order carries.

The catalogue is what this center performs: an order naming a code that is not
in it (or is retired) is refused at the edge (REST 422, HL7 AE 103) instead of
becoming a loop nobody can schedule. An order from OMI^O23 may carry several
scheduled procedure steps (one per IPC segment); each is stored so the DICOM
worklist can offer every step to the modality.
"""
from __future__ import annotations

from sqlmodel import Field, SQLModel


class Procedure(SQLModel, table=True):
    __tablename__ = "procedure_catalogue"
    code: str = Field(primary_key=True, max_length=64, description="The code HIS orders send (OBR-4.1, procedure.code)")
    name: str = Field(max_length=200)
    modality: str = Field(index=True, max_length=4, description="DICOM modality the procedure is performed on")
    body_part: str = Field(max_length=64, description="Default body part (DICOM Body Part Examined)")
    active: bool = Field(default=True, description="Retired codes stay for old orders; new orders are refused")


class ScheduledStep(SQLModel, table=True):
    """One scheduled procedure step of an order (OMI^O23 IPC segment), in the order the HIS sent them."""

    __tablename__ = "scheduled_step"
    id: str = Field(primary_key=True, description="<accession>/<n>")
    accession_number: str = Field(index=True)
    seq: int = Field(description="1-based position of the IPC segment")
    step_id: str = Field(description="IPC-4 Scheduled Procedure Step ID (the MWL's ScheduledProcedureStepID)")
    requested_procedure_id: str = Field(default="", description="IPC-2")
    placer_study_instance_uid: str = Field(default="", description="IPC-3 as sent (the loop assigns its own)")
    modality: str = Field(description="IPC-5")
    protocol_code: str = Field(default="", description="IPC-6.1")
    protocol_name: str = Field(default="", description="IPC-6.2")
    station_name: str = Field(default="", description="IPC-7")
    location: str = Field(default="", description="IPC-8")
    station_ae_title: str = Field(default="", description="IPC-9")
