"""Query/Retrieve C-FIND (Patient Root and Study Root), served from the image index.

Responses carry the requested keys plus Query/Retrieve Level and Retrieve AE
Title (PS3.4 C.4.1.1.3.2, ALWAYS_KEYS), shaped by handlers/find.py like worklist
answers; statuses are those of handlers/find.py.
"""
from __future__ import annotations

from pydicom.dataset import Dataset

from core.db import session_scope
from domain.imaging_tables import ImagingInstance, ImagingSeries, ImagingStudy
from integrations.dicom import qr_query
from integrations.dicom.responses import Values, put

ALWAYS_KEYS = ("QueryRetrieveLevel", "RetrieveAETitle")


def _patient(study: ImagingStudy) -> Values:
    v: Values = {}
    put(v, "PatientID", study.patient_id)
    put(v, "PatientName", study.patient_name)
    put(v, "PatientBirthDate", study.patient_birth_date)
    put(v, "PatientSex", study.patient_sex)
    return v


def patient_values(study: ImagingStudy, counts: tuple[int, int, int]) -> Values:
    v = _patient(study)
    put(v, "NumberOfPatientRelatedStudies", str(counts[0]))
    put(v, "NumberOfPatientRelatedSeries", str(counts[1]))
    put(v, "NumberOfPatientRelatedInstances", str(counts[2]))
    return v


def study_values(study: ImagingStudy) -> Values:
    v = _patient(study)
    put(v, "StudyInstanceUID", study.study_instance_uid)
    put(v, "AccessionNumber", study.accession_number)
    put(v, "StudyDate", study.study_date)
    put(v, "StudyTime", study.study_time)
    put(v, "StudyID", study.study_id)
    put(v, "StudyDescription", study.study_description)
    put(v, "ReferringPhysicianName", study.referring_physician_name)
    put(v, "ModalitiesInStudy", study.modalities.split() or None)
    put(v, "NumberOfStudyRelatedSeries", str(study.num_series))
    put(v, "NumberOfStudyRelatedInstances", str(study.num_instances))
    return v


def series_values(study: ImagingStudy, series: ImagingSeries) -> Values:
    v: Values = {}
    put(v, "StudyInstanceUID", study.study_instance_uid)
    put(v, "PatientID", study.patient_id)
    put(v, "SeriesInstanceUID", series.series_instance_uid)
    put(v, "Modality", series.modality)
    put(v, "SeriesNumber", series.series_number or None)
    put(v, "SeriesDescription", series.series_description)
    put(v, "BodyPartExamined", series.body_part_examined)
    put(v, "NumberOfSeriesRelatedInstances", str(series.num_instances))
    return v


def instance_values(study: ImagingStudy, series: ImagingSeries, inst: ImagingInstance) -> Values:
    v = series_values(study, series)
    put(v, "SOPInstanceUID", inst.sop_instance_uid)
    put(v, "SOPClassUID", inst.sop_class_uid)
    put(v, "InstanceNumber", inst.instance_number or None)
    put(v, "AvailableTransferSyntaxUID", inst.transfer_syntax_uid)
    return v


def matches(query: Dataset, ae_title: str) -> list[Values]:
    """The index rows the query matches at its level, each with Query/Retrieve Level and Retrieve AE Title."""
    with session_scope() as s:
        level, rows = qr_query.search(s, query)
        if level == "PATIENT":
            firsts: dict[str, ImagingStudy] = {}
            for (study,) in rows:
                firsts.setdefault(study.patient_id, study)
            counts = qr_query.patient_counts(s, set(firsts))
            values = [patient_values(st, counts.get(pid, (0, 0, 0))) for pid, st in firsts.items()]
        elif level == "STUDY":
            values = [study_values(st) for (st,) in rows]
        elif level == "SERIES":
            values = [series_values(st, se) for st, se in rows]
        else:
            values = [instance_values(st, se, inst) for st, se, inst in rows]
    for v in values:
        put(v, "QueryRetrieveLevel", level)
        put(v, "RetrieveAETitle", ae_title)
    return values
