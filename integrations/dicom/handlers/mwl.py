"""Modality Worklist C-FIND (R4.2.2): the loop's scheduled steps as IHE SWF worklist items.

Return keys follow IHE RAD TF-2 (SWF, RAD-5 Query Modality Worklist): patient
identification and demographics, the requested procedure (ID, description, code,
Study Instance UID, priority), the imaging service request (accession,
requesting and referring physician) and one Scheduled Procedure Step item
(modality, station AE, start date/time, step ID, description, protocol code).

Responses are encoded once per distinct item, query shape, character set and VR
encoding (`_encoded`, an LRU): the key is the item's whole content
(worklist.WorklistItem), so an edited name, a new step or a status change is a new
key, while the search that decides which items match runs on every query.
"""
from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from core.db import session_scope
from integrations.dicom import worklist
from integrations.dicom.codec import EncodedDataset
from integrations.dicom.matching import da, tm
from integrations.dicom.responses import Shape, Values, encode_identifier, put, query_shape, to_dataset
from security.field_crypto import is_sealed

CODING_SCHEME = "99RADLOOP"
ISSUER = "RADLOOP"
PRIORITY = {"stat": "STAT", "urgent": "HIGH", "routine": "ROUTINE"}
SPS_STATUS = {"scheduled": "SCHEDULED", "in_progress": "STARTED"}
# Encoded responses kept (~1-2 KB each): a day's worklist of every room, times a few query shapes.
ENCODED_CACHE_ITEMS = 4096


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
    start = item.scheduled_start
    v: Values = {}
    put(v, "PatientName", item.patient_name)
    put(v, "PatientID", item.patient_id)
    put(v, "IssuerOfPatientID", ISSUER)
    put(v, "PatientBirthDate", item.birth_date.strftime("%Y%m%d"))
    put(v, "PatientSex", item.sex)
    others: list[Values] = []
    for ident in item.identifiers:
        if is_sealed(ident.system):
            continue  # personal numbers (ID card, insurance) stay sealed: modalities get record numbers only
        other: Values = {}
        put(other, "PatientID", ident.value)
        put(other, "IssuerOfPatientID", ident.system)
        others.append(other)
    put(v, "OtherPatientIDsSequence", others)
    alerts = [a for a, on in (("MDRO", item.special_mdro), ("Infectious", item.special_infectious)) if on]
    put(v, "MedicalAlerts", alerts or None)
    put(v, "AccessionNumber", item.accession_number)
    put(v, "ReferringPhysicianName", item.clinician_name)
    put(v, "RequestingPhysician", item.clinician_name)
    put(v, "RequestingService", item.department)
    put(v, "StudyInstanceUID", item.study_instance_uid)
    put(v, "RequestedProcedureID", item.accession_number)
    put(v, "RequestedProcedureDescription", item.procedure_name)
    put(v, "RequestedProcedureCodeSequence", [_code(item.procedure_code, item.procedure_name)])
    put(v, "RequestedProcedurePriority", PRIORITY.get(item.priority, "ROUTINE"))
    put(v, "ReasonForTheRequestedProcedure", item.clinical_purpose)
    put(v, "ReferencedStudySequence", [])
    put(v, "ReferencedPatientSequence", [])
    put(v, "AdmissionID", None)
    put(v, "CurrentPatientLocation", None)
    sps: Values = {}
    put(sps, "Modality", item.modality)
    put(sps, "ScheduledStationAETitle", item.station_ae_title)
    put(sps, "ScheduledStationName", item.room_name[:16])
    put(sps, "ScheduledProcedureStepLocation", item.room_id)
    put(sps, "ScheduledProcedureStepStartDate", da(start, zone))
    put(sps, "ScheduledProcedureStepStartTime", tm(start, zone))
    put(sps, "ScheduledPerformingPhysicianName", None)
    put(sps, "ScheduledProcedureStepDescription", item.procedure_name)
    put(sps, "ScheduledProtocolCodeSequence", [_code(item.procedure_code, item.procedure_name)])
    put(sps, "ScheduledProcedureStepID", item.sps_id)
    put(sps, "ScheduledProcedureStepStatus", SPS_STATUS.get(item.status, "SCHEDULED"))
    put(sps, "BodyPartExamined", item.body_part)
    put(v, "ScheduledProcedureStepSequence", [sps])
    return v


def item_dataset(item: worklist.WorklistItem, zone: ZoneInfo) -> Dataset:
    """The whole item as a dataset (for export, e.g. the benchmark's wlmscpfs files)."""
    return to_dataset(item_values(item, zone))


def _search(query: Dataset, tz: str) -> list[worklist.WorklistItem]:
    q = parse_query(query)
    with session_scope() as s:
        return worklist.search(s, q, tz)


def matches(query: Dataset, tz: str) -> list[Values]:
    """Every known return key of each scheduled step the worklist query matches."""
    zone = ZoneInfo(tz)
    return [v for item in _search(query, tz) for v in per_step(item_values(item, zone), item.steps)]


def encoded_matches(query: Dataset, tz: str, charset: str, implicit_vr: bool) -> list[EncodedDataset]:
    """The response identifiers `matches` would give, projected and encoded (little endian), from the cache."""
    shape = query_shape(query)
    return [ds for item in _search(query, tz) for ds in _encoded(item, tz, shape, charset, implicit_vr)]


@lru_cache(maxsize=ENCODED_CACHE_ITEMS)
def _encoded(item: worklist.WorklistItem, tz: str, shape: Shape, charset: str,
             implicit_vr: bool) -> tuple[EncodedDataset, ...]:
    """One item's responses (one per scheduled step); everything they depend on is in the key.

    pynetdicom only reads a response identifier, so one object serves every association."""
    values = per_step(item_values(item, ZoneInfo(tz)), item.steps)
    return tuple(EncodedDataset(encode_identifier(v, shape, charset, implicit_vr), implicit_vr) for v in values)


def per_step(values: Values, steps: tuple[worklist.Step, ...]) -> list[Values]:
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
