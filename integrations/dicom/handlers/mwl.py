"""Modality Worklist C-FIND (R4.2.2): the loop's scheduled steps as IHE SWF worklist items.

Return keys follow IHE RAD TF-2 (SWF, RAD-5 Query Modality Worklist): patient
identification and demographics, the requested procedure (ID, description, code,
Study Instance UID, priority), the imaging service request (accession,
requesting and referring physician) and one Scheduled Procedure Step item
(modality, station AE, start date/time, step ID, description, protocol code).
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from core.db import session_scope
from integrations.dicom import worklist
from integrations.dicom.matching import da, tm, utc_aware
from integrations.dicom.responses import Values, put, to_dataset
from domain.procedure_tables import ScheduledStep
from pydicom.datadict import tag_for_keyword
from services.procedure_steps import steps_by_accession

CODING_SCHEME = "99RADLOOP"
ISSUER = "RADLOOP"
PRIORITY = {"stat": "STAT", "urgent": "HIGH", "routine": "ROUTINE"}
SPS_STATUS = {"scheduled": "SCHEDULED", "in_progress": "STARTED"}


def _first_item(query: Dataset) -> Dataset:
    seq = query.get("ScheduledProcedureStepSequence")
    return seq[0] if seq else Dataset()


def parse_query(query: Dataset) -> worklist.WorklistQuery:
    sps = _first_item(query)

    def text(ds: Dataset, keyword: str) -> str | None:
        value = ds.get(keyword)
        return None if value is None else str(value)

    return worklist.WorklistQuery(
        accession_number=text(query, "AccessionNumber"),
        patient_id=text(query, "PatientID"),
        patient_name=text(query, "PatientName"),
        study_instance_uid=text(query, "StudyInstanceUID"),
        modality=text(sps, "Modality"),
        station_ae_title=text(sps, "ScheduledStationAETitle"),
        start_date=text(sps, "ScheduledProcedureStepStartDate"),
        start_time=text(sps, "ScheduledProcedureStepStartTime"),
        sps_id=text(sps, "ScheduledProcedureStepID"),
    )


def _code(value: str, meaning: str) -> Values:
    item: Values = {}
    put(item, "CodeValue", value[:16])
    put(item, "CodingSchemeDesignator", CODING_SCHEME)
    put(item, "CodeMeaning", meaning[:64])
    return item


def item_values(item: worklist.WorklistItem, zone: ZoneInfo) -> Values:
    """Every return key RadLoop knows for one scheduled step."""
    e, o, p = item.entry, item.order, item.patient
    start = utc_aware(e.scheduled_start)
    v: Values = {}
    put(v, "PatientName", p.name)
    put(v, "PatientID", p.id)
    put(v, "IssuerOfPatientID", ISSUER)
    put(v, "PatientBirthDate", p.birth_date.strftime("%Y%m%d"))
    put(v, "PatientSex", p.sex)
    others: list[Values] = []
    for ident in item.identifiers:
        other: Values = {}
        put(other, "PatientID", ident.value)
        put(other, "IssuerOfPatientID", ident.system)
        others.append(other)
    put(v, "OtherPatientIDsSequence", others)
    alerts = [a for a, on in (("MDRO", o.special_mdro), ("Infectious", o.special_infectious)) if on]
    put(v, "MedicalAlerts", alerts or None)
    put(v, "AccessionNumber", o.accession_number)
    put(v, "ReferringPhysicianName", o.ordering_clinician_name)
    put(v, "RequestingPhysician", o.ordering_clinician_name)
    put(v, "RequestingService", o.ordering_department)
    put(v, "StudyInstanceUID", e.study_instance_uid)
    put(v, "RequestedProcedureID", o.accession_number)
    put(v, "RequestedProcedureDescription", o.procedure_name)
    put(v, "RequestedProcedureCodeSequence", [_code(o.procedure_code, o.procedure_name)])
    put(v, "RequestedProcedurePriority", PRIORITY.get(o.priority, "ROUTINE"))
    put(v, "ReasonForTheRequestedProcedure", o.clinical_purpose)
    put(v, "ReferencedStudySequence", [])
    put(v, "ReferencedPatientSequence", [])
    put(v, "AdmissionID", None)
    put(v, "CurrentPatientLocation", None)
    sps: Values = {}
    put(sps, "Modality", e.modality)
    put(sps, "ScheduledStationAETitle", e.station_ae_title)
    put(sps, "ScheduledStationName", item.room_name[:16])
    put(sps, "ScheduledProcedureStepLocation", e.room_id)
    put(sps, "ScheduledProcedureStepStartDate", da(start, zone))
    put(sps, "ScheduledProcedureStepStartTime", tm(start, zone))
    put(sps, "ScheduledPerformingPhysicianName", None)
    put(sps, "ScheduledProcedureStepDescription", o.procedure_name)
    put(sps, "ScheduledProtocolCodeSequence", [_code(o.procedure_code, o.procedure_name)])
    put(sps, "ScheduledProcedureStepID", e.id)
    put(sps, "ScheduledProcedureStepStatus", SPS_STATUS.get(e.status, "SCHEDULED"))
    put(sps, "BodyPartExamined", o.body_part)
    put(v, "ScheduledProcedureStepSequence", [sps])
    return v


def item_dataset(item: worklist.WorklistItem, zone: ZoneInfo) -> Dataset:
    """The whole item as a dataset (for export, e.g. the benchmark's wlmscpfs files)."""
    return to_dataset(item_values(item, zone))


def matches(query: Dataset, tz: str) -> list[Values]:
    """Every known return key of each scheduled step the worklist query matches."""
    q = parse_query(query)
    zone = ZoneInfo(tz)
    with session_scope() as s:
        items = worklist.search(s, q, tz)
        steps = steps_by_accession(s, [item.order.accession_number for item in items])
    return [v for item in items for v in per_step(item_values(item, zone), steps.get(item.order.accession_number, []))]


def per_step(values: Values, steps: list[ScheduledStep]) -> list[Values]:
    """One item per scheduled step the order carries (OMI IPC segments), else the entry's single step."""
    if not steps:
        return [values]
    sps_tag = tag_for_keyword("ScheduledProcedureStepSequence")
    base = values[sps_tag][1][0]
    out = []
    for step in steps:
        sps, v = dict(base), dict(values)
        put(sps, "Modality", step.modality)
        put(sps, "ScheduledProcedureStepID", step.step_id)
        if step.protocol_code:
            put(sps, "ScheduledProcedureStepDescription", step.protocol_name)
            put(sps, "ScheduledProtocolCodeSequence", [_code(step.protocol_code, step.protocol_name)])
        put(v, "ScheduledProcedureStepSequence", [sps])
        out.append(v)
    return out
