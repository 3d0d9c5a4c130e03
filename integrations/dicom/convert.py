"""Non-DICOM to DICOM (issue 3): JPEG/PNG -> Secondary Capture, PDF -> Encapsulated PDF, with the order's attributes.

Paper requests, outside reports and photos join the order's study: the new object
carries the order's patient, accession and Study Instance UID (the one the
worklist gave the modality), so viewers show it with the images. JPEG is
encapsulated as received (JPEG Baseline transfer syntax, no re-encoding); PNG is
decoded (8-bit greyscale, RGB or RGBA, non-interlaced) and stored uncompressed;
PDF bytes go into Encapsulated Document. Anything else raises `Unsupported`.
"""
from __future__ import annotations

import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from domain.scheduling import study_instance_uid
from domain.tables import ExamOrder, Patient


class Unsupported(ValueError):
    """Not a file type (or variant) RadLoop converts; the reason says which."""


def _order_attributes(ds: Dataset, order: ExamOrder, patient: Patient, at: datetime) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID = patient.name, patient.id
    ds.PatientBirthDate, ds.PatientSex = patient.birth_date.strftime("%Y%m%d"), patient.sex
    ds.AccessionNumber = order.accession_number
    ds.StudyInstanceUID = study_instance_uid(order.accession_number)
    ds.StudyDescription = order.procedure_name[:64]
    ds.ReferringPhysicianName = order.ordering_clinician_name
    ds.StudyDate = ds.ContentDate = ds.SeriesDate = at.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = ds.SeriesTime = at.strftime("%H%M%S")
    ds.StudyID = order.accession_number[-16:]
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 900, 1


def _jpeg_header(data: bytes) -> tuple[int, int, int, int]:
    """(precision, rows, columns, components) from the SOF0/SOF1 segment."""
    if data[:2] != b"\xff\xd8":
        raise Unsupported("not a JPEG file")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise Unsupported("corrupt JPEG marker stream")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1):
            precision, rows, cols, comps = struct.unpack(">BHHB", data[i + 4:i + 10])
            return precision, rows, cols, comps
        if 0xC2 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise Unsupported("only baseline/extended sequential JPEG can be encapsulated")
        i += 2 + length
    raise Unsupported("JPEG without a frame header")


def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced greyscale / RGB / RGBA PNG (RGBA drops alpha)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Unsupported("not a PNG file")
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif ctype == b"IDAT":
            idat += chunk
        pos += 12 + length
    if header is None:
        raise Unsupported("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise Unsupported("only 8-bit non-interlaced greyscale, RGB or RGBA PNG")
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8)
    stride = width * channels
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        f, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) % 256
        elif f == 1:
            cur = line.copy()
            for x in range(channels, stride):
                cur[x] = (cur[x] + cur[x - channels]) % 256
        elif f in (3, 4):
            cur = line.copy()
            for x in range(stride):
                a = cur[x - channels] if x >= channels else 0
                b = prev[x]
                if f == 3:
                    cur[x] = (cur[x] + (a + b) // 2) % 256
                else:
                    c = prev[x - channels] if x >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    cur[x] = (cur[x] + pred) % 256
        else:
            raise Unsupported(f"bad PNG filter {f}")
        out[y] = cur
        prev = cur
    img = out.reshape(height, width, channels)
    return img[..., 0] if channels == 1 else img[..., :3]


def _secondary_capture(ds: Dataset) -> None:
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SeriesDescription = "Converted attachment"


def convert(data: bytes, content_type: str, order: ExamOrder, patient: Patient, out: Path) -> Dataset:
    """Write a Part 10 file for `data` to `out` and return its dataset."""
    at = datetime.now(timezone.utc)
    ds = Dataset()
    _order_attributes(ds, order, patient, at)
    ds.file_meta = FileMetaDataset()
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/pdf":
        if not data.startswith(b"%PDF"):
            raise Unsupported("not a PDF file")
        ds.SOPClassUID, ds.Modality = EncapsulatedPDFStorage, "DOC"
        ds.ConversionType = "WSD"
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.DocumentTitle = "Attached document"
        ds.BurnedInAnnotation = "YES"
        ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
        ds.EncapsulatedDocumentLength = len(data)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    elif kind in ("image/jpeg", "image/jpg"):
        precision, rows, cols, comps = _jpeg_header(data)
        if precision != 8 or comps not in (1, 3):
            raise Unsupported("only 8-bit greyscale or colour JPEG")
        _secondary_capture(ds)
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, comps
        ds.PhotometricInterpretation = "MONOCHROME2" if comps == 1 else "YBR_FULL_422"
        if comps == 3:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.LossyImageCompression = "01"
        ds.PixelData = encapsulate([data])
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    elif kind == "image/png":
        img = _png_pixels(data)
        _secondary_capture(ds)
        ds.Rows, ds.Columns = img.shape[:2]
        ds.SamplesPerPixel = 1 if img.ndim == 2 else 3
        ds.PhotometricInterpretation = "MONOCHROME2" if img.ndim == 2 else "RGB"
        if img.ndim == 3:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.ascontiguousarray(img).tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    else:
        raise Unsupported(f"cannot convert {kind or 'unknown type'} (JPEG, PNG and PDF only)")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(out, enforce_file_format=True)
    return ds
