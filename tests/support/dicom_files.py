"""Small, real DICOM files for tests: CT and secondary-capture images in the transfer syntaxes we accept."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    UID,
    generate_uid,
)

from tests.support.dicom_tools import DCMTK_ENV


def make_image(path: Path, *, study_uid: str, series_uid: str | None = None, patient_id: str = "P1",
               accession: str = "", name: str = "张三", size: int = 64, bits: int = 16, modality: str = "CT",
               instance: int = 1, seed: int = 0) -> Path:
    """A noisy phantom (so compression has work to do), Explicit VR Little Endian."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2
    if bits == 16:
        pixels = (disc * 1000 + rng.normal(0, 20, (size, size)) + 1024).clip(0, 4095).astype(np.uint16)
    else:
        pixels = (disc * 120 + rng.normal(0, 8, (size, size)) + 60).clip(0, 255).astype(np.uint8)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage if bits == 16 else SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700501"
    ds.PatientSex = "M"
    ds.AccessionNumber = accession
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20261127", "101500", "1"
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber = 1, instance
    ds.ReferringPhysicianName = "孙医生"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def compressed_copy(src: Path, dst: Path, syntax: UID) -> Path:
    """JPEG-LS / JPEG 2000 / RLE lossless with pydicom's encoders (pyjpegls, pylibjpeg, pydicom)."""
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.compress(syntax)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def jpeg_baseline_copy(src8: Path, dst: Path) -> Path:
    """JPEG baseline (8-bit) via DCMTK's dcmcjpeg; pydicom has no baseline encoder."""
    subprocess.run(["dcmcjpeg", "+eb", "+ud", str(src8), str(dst)], env=DCMTK_ENV, check=True)
    return dst


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set after the file meta: what the sender put on the wire."""
    raw = path.read_bytes()
    meta_len = int.from_bytes(raw[140:144], "little")  # (0002,0000) group length value
    return raw[144 + meta_len:]


def file_meta_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


# ---- MPPS as a modality sends it -------------------------------------------------------
def in_progress(acc: str, study_uid: str = "1.2.3") -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "张三"
    ds.PatientID = "P1"
    sched = Dataset()
    sched.AccessionNumber = acc
    sched.ScheduledProcedureStepID = f"{acc}-1"
    sched.StudyInstanceUID = study_uid
    ds.ScheduledStepAttributesSequence = [sched]
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepStartDate = "20261127"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "CT chest with contrast"
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = []
    return ds


def completed(series_uid: str, sops: list[str], status: str = "COMPLETED") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261127"
    ds.PerformedProcedureStepEndTime = "102000"
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.SeriesDescription = "axial"
    refs = []
    for sop in sops:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = sop
        refs.append(ref)
    series.ReferencedImageSequence = refs
    ds.PerformedSeriesSequence = [series]
    ds.ContrastBolusAgent = "iohexol"
    ds.ContrastBolusVolume = "80"
    if status == "DISCONTINUED":
        code = Dataset()
        code.CodeValue = "110514"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Incorrect worklist entry selected"
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    return ds
