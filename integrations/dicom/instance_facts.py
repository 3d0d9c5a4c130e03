"""Read and check a received object without decoding its pixels (R4.2.3, bad input).

The file is parsed with a defer size, so large values (pixel data, a forged
4 GB length) are never read into memory: memory stays bounded whatever the
declared lengths say. Structure is checked instead: every VR must be a DICOM
VR, every value must lie inside the file, encapsulated pixel data must end with
its sequence delimiter, and the identifying UIDs must be present and agree with
the C-STORE command. Anything else raises `Unacceptable` with the reason the
object is quarantined under.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.valuerep import VR

DEFER_BYTES = 64 * 1024
UNDEFINED = 0xFFFFFFFF
SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_VALID_VRS = {v.value for v in VR}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


class Unacceptable(ValueError):
    """The object cannot be stored; `status` is the C-STORE failure to answer (PS3.4 B.2.3)."""

    def __init__(self, reason: str, status: int = 0xC000) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class InstanceFacts(BaseModel):
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician_name: str = ""
    specific_character_set: str = ""
    modality: str = ""
    series_number: str = ""
    series_description: str = ""
    body_part_examined: str = ""
    instance_number: str = ""


def _check_structure(ds: Dataset, size: int) -> None:
    for elem in ds._dict.values():  # raw elements: nothing is converted
        if not isinstance(elem, RawDataElement):
            continue
        if elem.VR is not None and elem.VR not in _VALID_VRS:
            raise Unacceptable(f"invalid VR {elem.VR!r} in {elem.tag}")
        if elem.length != UNDEFINED and elem.value_tell + elem.length > size:
            raise Unacceptable(f"element {elem.tag} declares {elem.length} bytes beyond the end of the data "
                               f"(truncated or forged length)")


def _check_pixel_end(path: Path, ds: Dataset, size: int) -> None:
    for tag in _PIXEL_TAGS:
        elem = ds._dict.get(tag)
        if isinstance(elem, RawDataElement) and elem.length == UNDEFINED:
            with open(path, "rb") as f:
                f.seek(max(0, size - 64))
                tail = f.read()
            if SEQ_DELIMITER not in tail:
                raise Unacceptable("encapsulated pixel data has no sequence delimiter (truncated)")


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is a bad value
        raise Unacceptable(f"unreadable {keyword}: {exc}") from exc
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def read_facts(path: Path, command_sop_class: str | None, command_sop_instance: str | None) -> InstanceFacts:
    """Facts of a spooled Part 10 file; the command's UIDs (C-STORE) must match when given (None: STOW-RS)."""
    size = path.stat().st_size
    try:
        ds = dcmread(path, defer_size=DEFER_BYTES)
    except (InvalidDicomError, EOFError, OSError, ValueError, NotImplementedError, KeyError) as exc:
        raise Unacceptable(f"unreadable DICOM: {exc}") from exc
    _check_structure(ds, size)
    _check_pixel_end(path, ds, size)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "") if hasattr(ds, "file_meta") else ""
    if not ts:
        raise Unacceptable("no transfer syntax")
    uids = {k: _text(ds, k) for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")}
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise Unacceptable(f"missing {', '.join(missing)}", status=0xA900)
    if command_sop_instance is None:
        command_sop_instance = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or uids["SOPInstanceUID"])
        command_sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or uids["SOPClassUID"])
    if uids["SOPInstanceUID"] != command_sop_instance or uids["SOPClassUID"] != command_sop_class:
        raise Unacceptable("SOP Class/Instance UID in the data set differ from the C-STORE request", status=0xA900)
    return InstanceFacts(
        sop_class_uid=uids["SOPClassUID"], sop_instance_uid=uids["SOPInstanceUID"],
        study_instance_uid=uids["StudyInstanceUID"], series_instance_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=ts,
        **{field: _text(ds, keyword) for field, keyword in _TEXT_FIELDS.items()},
    )


_TEXT_FIELDS = {
    "patient_id": "PatientID", "patient_name": "PatientName", "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex", "accession_number": "AccessionNumber", "study_date": "StudyDate",
    "study_time": "StudyTime", "study_id": "StudyID", "study_description": "StudyDescription",
    "referring_physician_name": "ReferringPhysicianName", "specific_character_set": "SpecificCharacterSet",
    "modality": "Modality", "series_number": "SeriesNumber", "series_description": "SeriesDescription",
    "body_part_examined": "BodyPartExamined", "instance_number": "InstanceNumber",
}
