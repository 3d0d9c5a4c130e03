"""Non-DICOM attachments (issue 3): JPEG/PNG -> Secondary Capture, PDF -> Encapsulated PDF, in the order's study."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
import pydicom
from pydicom.encaps import generate_frames
from pydicom.uid import EncapsulatedPDFStorage, JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from core.db import get_engine
from domain.orders import OrderIn
from domain.scheduling import study_instance_uid
from services.order_intake import record_order
from tests.support.dicom_files import jpeg_baseline_copy, make_image
from tests.support.loop_driver import order_payload

REGISTRAR = {"Authorization": "Bearer dev-registrar"}


def png(img: np.ndarray) -> bytes:
    """A PNG that uses every filter type (row y uses filter y % 5), to exercise the decoder."""
    h, w, c = img.shape
    a = img.reshape(h, w * c).astype(np.int32)
    rows = []
    for y in range(h):
        f, cur = y % 5, a[y]
        prev = a[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(c, np.int32), cur[:-c]])
        upleft = np.concatenate([np.zeros(c, np.int32), prev[:-c]])
        if f == 0:
            pred = np.zeros_like(cur)
        elif f == 1:
            pred = left
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([f]) + ((cur - pred) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, {1: 0, 3: 2}[c], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


async def test_attachments_join_the_order_study(sqlite_database, tmp_path: Path) -> None:
    from sqlmodel import Session

    from api.main import create_app
    from integrations.dicom.store import DicomStore
    from core.config import get_settings

    order = record_order(lambda: Session(get_engine(), expire_on_commit=False),
                         OrderIn.model_validate(order_payload())).order
    acc = order.accession_number
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (23, 17, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (9, 31, 1), dtype=np.uint8)
    jpeg_dicom = jpeg_baseline_copy(make_image(tmp_path / "e.dcm", study_uid=generate_uid(), bits=8), tmp_path / "j.dcm")
    jpeg = next(generate_frames(pydicom.dcmread(jpeg_dicom).PixelData))
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    store = DicomStore(get_settings().data_dir / "dicom")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://t") as client:
        async def attach(body: bytes, ctype: str, headers: dict[str, str] = REGISTRAR) -> httpx.Response:
            return await client.post(f"/dicomweb/orders/{acc}/attachments", content=body,
                                     headers={**headers, "Content-Type": ctype})

        stored = {}
        for name, body, ctype in (("rgb", png(rgb), "image/png"), ("grey", png(grey), "image/png"),
                                  ("jpeg", jpeg, "image/jpeg"), ("pdf", pdf, "application/pdf")):
            r = await attach(body, ctype)
            assert r.status_code == 201, r.text
            stored[name] = r.json()
        assert (await attach(b"GIF89a....", "image/gif")).status_code == 415
        assert (await attach(b"not really", "image/png")).status_code == 415
        assert (await attach(pdf, "application/pdf", {"Authorization": "Bearer dev-clinician"})).status_code == 403
        assert (await client.post("/dicomweb/orders/NOPE/attachments", content=pdf,
                                  headers={**REGISTRAR, "Content-Type": "application/pdf"})).status_code == 404

        def read(name: str) -> pydicom.Dataset:
            from domain.imaging_tables import ImagingInstance

            with Session(get_engine()) as s:
                row = s.get(ImagingInstance, stored[name]["sop_instance_uid"])
            return pydicom.dcmread(store.path(row.rel_path))

        for name, ds in ((n, read(n)) for n in stored):
            assert ds.AccessionNumber == acc and ds.PatientID == order.patient_id and ds.PatientName == "张三"
            assert ds.StudyInstanceUID == study_instance_uid(acc)
        rgb_ds, grey_ds = read("rgb"), read("grey")
        assert rgb_ds.SOPClassUID == SecondaryCaptureImageStorage and rgb_ds.PhotometricInterpretation == "RGB"
        assert np.array_equal(rgb_ds.pixel_array, rgb) and np.array_equal(grey_ds.pixel_array, grey[..., 0])
        jpeg_ds = read("jpeg")
        assert jpeg_ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
        assert next(generate_frames(jpeg_ds.PixelData)).rstrip(b"\x00") == jpeg.rstrip(b"\x00")  # encapsulated as sent
        pdf_ds = read("pdf")
        assert pdf_ds.SOPClassUID == EncapsulatedPDFStorage and bytes(pdf_ds.EncapsulatedDocument)[:len(pdf)] == pdf
