"""Rendered images (PS3.18 rendered resources): windowed 8-bit pictures, watermarked, audited."""
from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import JPEG2000Lossless, generate_uid

from integrations.dicom.render import RenderError, pixels_for_display, render
from tests.support.dicom_files import compressed_copy, make_image

TECH = {"Authorization": "Bearer dev-technologist"}
DOCTOR = {"Authorization": "Bearer dev-radiologist"}


def test_the_stored_window_decides_what_is_white_and_black(tmp_path: Path) -> None:
    path = make_image(tmp_path / "ct.dcm", study_uid=generate_uid())
    ds = pydicom.dcmread(path)
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024  # stored 2024 in the disc -> +1000 HU; 1024 -> 0 HU
    ds.WindowCenter, ds.WindowWidth = 0, 400  # a soft-tissue window: +1000 HU is far above it
    grey = pixels_for_display(ds)
    assert grey.dtype == np.uint8 and grey.shape == (64, 64)
    assert grey[32, 32] == 255  # the dense disc is saturated white
    assert 90 < np.median(grey[:4, :4]) < 170  # 0 HU background sits mid-grey in a window centred on 0
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert pixels_for_display(ds)[32, 32] == 0  # MONOCHROME1: inverted


def test_compressed_objects_render_like_their_originals(tmp_path: Path) -> None:
    plain = make_image(tmp_path / "a.dcm", study_uid=generate_uid())
    j2k = compressed_copy(plain, tmp_path / "b.dcm", JPEG2000Lossless)
    a = np.asarray(Image.open(io.BytesIO(render(plain, "image/png"))))
    b = np.asarray(Image.open(io.BytesIO(render(j2k, "image/png"))))
    assert np.array_equal(a, b)  # lossless in, lossless PNG out: the same picture
    with pytest.raises(RenderError, match="frames are numbered 1..1"):
        render(plain, "image/png", frame=2)
    with pytest.raises(RenderError, match="image/jpeg or image/png"):
        render(plain, "image/gif")


async def test_rendered_route_watermarks_the_viewer_and_audits_the_view(sqlite_database, tmp_path: Path) -> None:
    from api.main import create_app
    from tests.integrations.dicom.test_dicom_web import _stow_body

    app = create_app()
    study = generate_uid()
    path = make_image(tmp_path / "a.dcm", study_uid=study, patient_id="RND1", size=128)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    url = f"/dicomweb/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/rendered"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        body, ctype = _stow_body([path.read_bytes()])
        assert (await client.post("/dicomweb/studies", content=body, headers={**TECH, "Content-Type": ctype})).status_code == 200
        assert (await client.get(url)).status_code == 401
        jpeg = await client.get(url, headers=DOCTOR)
        assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
        assert jpeg.headers["cache-control"] == "no-store"
        png = await client.get(url, headers={**DOCTOR, "Accept": "image/png"})
        assert png.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(png.content))
        assert picture.size == (128, 128)
        clean = Image.open(io.BytesIO(render(path, "image/png")))
        assert not np.array_equal(np.asarray(picture.convert("L")), np.asarray(clean))  # the label is drawn in
        assert (await client.get(url, params={"frame": 2}, headers=DOCTOR)).status_code == 404
        assert (await client.get(url.replace(str(ds.SOPInstanceUID), generate_uid()), headers=DOCTOR)).status_code == 404

    from sqlmodel import Session, select

    from core.db import get_engine
    from domain.security_tables import AuditRecord

    with Session(get_engine()) as s:
        views = [r for r in s.exec(select(AuditRecord)).all()
                 if (r.detail or {}).get("rendered") and r.user_id == "u-radiologist"]
    assert len(views) >= 2
    assert all("u-radiologist" in v.detail["watermark"] for v in views)
