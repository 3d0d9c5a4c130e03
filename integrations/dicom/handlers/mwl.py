"""Modality Worklist C-FIND (R4.2.2): the loop's scheduled steps as IHE SWF worklist items.

Return keys follow IHE RAD TF-2 (SWF, RAD-5 Query Modality Worklist): patient
identification and demographics, the requested procedure (ID, description, code,
Study Instance UID, priority), the imaging service request (accession,
requesting and referring physician) and one Scheduled Procedure Step item
(modality, station AE, start date/time, step ID, description, protocol code).
"""
from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from core.db import session_scope
from integrations.dicom import worklist
from integrations.dicom.matching import da, tm, utc_aware
from integrations.dicom.responses import project, response_charset, with_charset

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


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value[:16]
    item.CodingSchemeDesignator = CODING_SCHEME
    item.CodeMeaning = meaning[:64]
    return item


def item_dataset(item: worklist.WorklistItem, zone: ZoneInfo) -> Dataset:
    """Every return key RadLoop knows for one scheduled step."""
    e, o, p = item.entry, item.order, item.patient
    start = utc_aware(e.scheduled_start)
    ds = Dataset()
    ds.PatientName = p.name
    ds.PatientID = p.id
    ds.IssuerOfPatientID = ISSUER
    ds.PatientBirthDate = p.birth_date.strftime("%Y%m%d")
    ds.PatientSex = p.sex
    others = []
    for ident in item.identifiers:
        other = Dataset()
        other.PatientID = ident.value
        other.IssuerOfPatientID = ident.system
        others.append(other)
    ds.OtherPatientIDsSequence = others
    alerts = [a for a, on in (("MDRO", o.special_mdro), ("Infectious", o.special_infectious)) if on]
    ds.MedicalAlerts = "\\".join(alerts) if alerts else None
    ds.AccessionNumber = o.accession_number
    ds.ReferringPhysicianName = o.ordering_clinician_name
    ds.RequestingPhysician = o.ordering_clinician_name
    ds.RequestingService = o.ordering_department
    ds.StudyInstanceUID = e.study_instance_uid
    ds.RequestedProcedureID = o.accession_number
    ds.RequestedProcedureDescription = o.procedure_name
    ds.RequestedProcedureCodeSequence = [_code(o.procedure_code, o.procedure_name)]
    ds.RequestedProcedurePriority = PRIORITY.get(o.priority, "ROUTINE")
    ds.ReasonForTheRequestedProcedure = o.clinical_purpose
    ds.ReferencedStudySequence = []
    ds.ReferencedPatientSequence = []
    ds.AdmissionID = None
    ds.CurrentPatientLocation = None
    sps = Dataset()
    sps.Modality = e.modality
    sps.ScheduledStationAETitle = e.station_ae_title
    sps.ScheduledStationName = item.room_name[:16]
    sps.ScheduledProcedureStepLocation = e.room_id
    sps.ScheduledProcedureStepStartDate = da(start, zone)
    sps.ScheduledProcedureStepStartTime = tm(start, zone)
    sps.ScheduledPerformingPhysicianName = None
    sps.ScheduledProcedureStepDescription = o.procedure_name
    sps.ScheduledProtocolCodeSequence = [_code(o.procedure_code, o.procedure_name)]
    sps.ScheduledProcedureStepID = e.id
    sps.ScheduledProcedureStepStatus = SPS_STATUS.get(e.status, "SCHEDULED")
    sps.BodyPartExamined = o.body_part
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def matches(query: Dataset, tz: str) -> Iterator[Dataset]:
    """Response identifiers for a worklist query, requested keys only, in the query's charset."""
    q = parse_query(query)
    charset = response_charset(query)
    zone = ZoneInfo(tz)
    with session_scope() as s:
        items = worklist.search(s, q, tz)
    for item in items:
        yield with_charset(project(item_dataset(item, zone), query), charset)
