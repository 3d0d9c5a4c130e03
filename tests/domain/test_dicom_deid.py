"""PS3.15 basic profile on pydicom datasets: references stay consistent, standard UIDs stay, nothing
identifying survives in sequences, overlays or private blocks, and burned-in text is refused."""
from __future__ import annotations

from datetime import date

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, generate_uid

from domain.deidentify import Pseudonymizer, age_at, scrub
from domain.dicom_deid import BurnedInText, deidentify


def _ds(**kw) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "张三", "M001"
    ds.StudyDate, ds.ContentDate, ds.PatientBirthDate = "20260101", "20260102", "19700501"
    ds.PatientSex, ds.PatientAge = "F", "055Y"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, ds.SOPInstanceUID
    ref.ReferringPhysicianName = "孙医生"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)  # overlay data
    ds.add_new(0x60000010, "US", 8)  # overlay rows: not identifying, kept
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_references_standard_uids_sequences_overlays() -> None:
    p = Pseudonymizer(key=b"k" * 32, day_offset=-100)
    ds = _ds()
    old_sop = ds.SOPInstanceUID
    deidentify(ds, p, "ANON-1", "EX-1")
    ref = ds.ReferencedImageSequence[0]
    assert ds.SOPInstanceUID != old_sop and ref.ReferencedSOPInstanceUID == ds.SOPInstanceUID == p.uid(old_sop)
    assert ds.SOPClassUID == CTImageStorage and ref.ReferencedSOPClassUID == CTImageStorage
    assert ref.ReferringPhysicianName == "" and "RequestAttributesSequence" not in ds
    assert 0x60003000 not in ds and 0x60000010 in ds
    assert (ds.StudyDate, ds.ContentDate, ds.PatientBirthDate) == ("20250923", "20250924", "")
    assert (ds.PatientSex, ds.PatientAge) == ("F", "055Y")  # Retain Patient Characteristics
    again = _ds(SOPInstanceUID=old_sop)
    deidentify(again, p, "ANON-1", "EX-1")
    assert again.SOPInstanceUID == ds.SOPInstanceUID  # same export, same mapping
    other = _ds(SOPInstanceUID=old_sop)
    deidentify(other, Pseudonymizer.fresh(), "ANON-2", "EX-2")
    assert other.SOPInstanceUID != ds.SOPInstanceUID  # another export cannot be linked


@pytest.mark.parametrize(("modality", "declared", "refused"), [
    ("CT", "YES", True), ("US", None, True), ("SC", None, True), ("US", "NO", False), ("CT", None, False)])
def test_burned_in_text(modality: str, declared: str | None, refused: bool) -> None:
    ds = _ds(Modality=modality)
    if declared:
        ds.BurnedInAnnotation = declared
    if refused:
        with pytest.raises(BurnedInText):
            deidentify(ds, Pseudonymizer.fresh(), "A", "E")
    else:
        assert deidentify(ds, Pseudonymizer.fresh(), "A", "E").PatientIdentityRemoved == "YES"


def test_record_helpers() -> None:
    p = Pseudonymizer.fresh()
    assert 30 <= abs(p.day_offset) <= 365
    assert p.shift_da("2026011") == "" and p.shift_dt("2026") == ""
    assert age_at(date(1930, 1, 1), date(2026, 1, 1)) == "90+" and age_at(date(2000, 6, 2), date(2026, 6, 1)) == "25"
    assert scrub("张三丰说张三丰 ID 110101", ["张三丰", "110101", "x"]) == "[removed]说[removed] ID [removed]"
