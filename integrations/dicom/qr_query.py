"""Query/Retrieve over the image index (R4.3.2): PATIENT, STUDY, SERIES and IMAGE levels.

Matching follows PS3.4 C.2.2.2 (single value, list of UIDs, wildcard, DA/TM
range, universal) on the columns the index holds; no file is opened to answer
a C-FIND. Retrieval resolves an identifier to the stored files to send.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, select

from domain.imaging_tables import ImagingInstance, ImagingSeries, ImagingStudy
from integrations.dicom.matching import is_universal, person_name_condition, split_range, string_condition

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MAX_MATCHES = 5000


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _range(column: Any, value: str) -> ColumnElement[bool]:
    lo, hi = split_range(value)
    conds = []
    if lo:
        conds.append(column >= lo)
    if hi:
        conds.append(column <= hi + ("~" if len(hi) < 6 else ""))
    return and_(*conds)


def _modalities(column: Any, value: str) -> ColumnElement[bool]:
    padded = " " + column + " "
    return or_(*[padded.like(f"% {m} %") for m in value.split("\\") if m])


Matcher = Callable[[Any, str], ColumnElement[bool]]
KEYS: dict[str, tuple[Any, Matcher]] = {
    "PatientID": (ImagingStudy.patient_id, string_condition),
    "PatientName": (ImagingStudy.patient_name, person_name_condition),
    "PatientBirthDate": (ImagingStudy.patient_birth_date, _range),
    "PatientSex": (ImagingStudy.patient_sex, string_condition),
    "StudyInstanceUID": (ImagingStudy.study_instance_uid, string_condition),
    "AccessionNumber": (ImagingStudy.accession_number, string_condition),
    "StudyDate": (ImagingStudy.study_date, _range),
    "StudyTime": (ImagingStudy.study_time, _range),
    "StudyID": (ImagingStudy.study_id, string_condition),
    "StudyDescription": (ImagingStudy.study_description, lambda c, v: string_condition(c, v, case_insensitive=True)),
    "ReferringPhysicianName": (ImagingStudy.referring_physician_name, person_name_condition),
    "ModalitiesInStudy": (ImagingStudy.modalities, _modalities),
    "SeriesInstanceUID": (ImagingSeries.series_instance_uid, string_condition),
    "Modality": (ImagingSeries.modality, string_condition),
    "SeriesNumber": (ImagingSeries.series_number, string_condition),
    "SeriesDescription": (ImagingSeries.series_description, lambda c, v: string_condition(c, v, case_insensitive=True)),
    "SOPInstanceUID": (ImagingInstance.sop_instance_uid, string_condition),
    "SOPClassUID": (ImagingInstance.sop_class_uid, string_condition),
    "InstanceNumber": (ImagingInstance.instance_number, string_condition),
}
TABLES_AT = {"PATIENT": 1, "STUDY": 1, "SERIES": 2, "IMAGE": 3}  # how deep the join goes


def level_of(query: Dataset) -> str:
    level = _text(query.get("QueryRetrieveLevel")).upper()
    if level not in LEVELS:
        raise ValueError(f"bad Query/Retrieve Level {level!r}")
    return level


def _conditions(query: Dataset, depth: int) -> list[ColumnElement[bool]]:
    tables = [ImagingStudy, ImagingSeries, ImagingInstance][:depth]
    conds = []
    for keyword, (column, matcher) in KEYS.items():
        if keyword not in query or column.class_ not in tables:
            continue
        value = _text(query.get(keyword))
        if not is_universal(value):
            conds.append(matcher(column, value))
    return conds


def search(session: Session, query: Dataset) -> tuple[str, list[tuple[Any, ...]]]:
    """(level, rows): rows are (study,), (study, series) or (study, series, instance)."""
    level = level_of(query)
    depth = TABLES_AT[level]
    entities: list[Any] = [ImagingStudy, ImagingSeries, ImagingInstance][:depth]
    stmt = select(*entities)
    if depth >= 2:
        stmt = stmt.join(ImagingSeries, ImagingSeries.study_instance_uid == ImagingStudy.study_instance_uid)
    if depth >= 3:
        stmt = stmt.join(ImagingInstance, ImagingInstance.series_instance_uid == ImagingSeries.series_instance_uid)
    for cond in _conditions(query, depth):
        stmt = stmt.where(cond)
    order = {1: ImagingStudy.study_date, 2: ImagingSeries.series_number, 3: ImagingInstance.instance_number}[depth]
    rows = session.exec(stmt.order_by(order).limit(MAX_MATCHES)).all()
    return level, [tuple(r) if depth > 1 else (r,) for r in rows]


def retrieve_targets(session: Session, query: Dataset) -> list[ImagingInstance]:
    """The stored instances a C-GET / C-MOVE identifier names (unique keys of its level)."""
    level = level_of(query)
    unique = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
              "IMAGE": "SOPInstanceUID"}[level]
    if is_universal(_text(query.get(unique))):
        raise ValueError(f"{unique} is required at level {level}")
    stmt = (select(ImagingInstance)
            .join(ImagingSeries, ImagingInstance.series_instance_uid == ImagingSeries.series_instance_uid)
            .join(ImagingStudy, ImagingSeries.study_instance_uid == ImagingStudy.study_instance_uid))
    for cond in _conditions(query, 3):
        stmt = stmt.where(cond)
    return list(session.exec(stmt.order_by(ImagingInstance.series_instance_uid, ImagingInstance.instance_number)))


def patient_counts(session: Session, patient_ids: set[str]) -> dict[str, tuple[int, int, int]]:
    """patient ID -> (studies, series, instances)."""
    stmt = (select(ImagingStudy.patient_id, func.count(), func.sum(ImagingStudy.num_series),
                   func.sum(ImagingStudy.num_instances))
            .where(ImagingStudy.patient_id.in_(patient_ids))  # type: ignore[attr-defined]
            .group_by(ImagingStudy.patient_id))
    return {pid: (int(n), int(se or 0), int(i or 0)) for pid, n, se, i in session.exec(stmt)}
