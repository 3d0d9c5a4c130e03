"""Lossless archive copies (issue 3): JPEG-LS and JPEG 2000 round-trip bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, generate_uid

from integrations.dicom.archive import NotLossless, archive_copy
from tests.support.dicom_files import jpeg_baseline_copy, make_image


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless])
@pytest.mark.parametrize("bits", [16, 8])
def test_archive_copy_is_bit_exact(tmp_path: Path, syntax, bits: int) -> None:
    src = make_image(tmp_path / "src.dcm", study_uid=generate_uid(), bits=bits, size=128, seed=bits)
    dst = archive_copy(src, tmp_path / "arch" / "x.dcm", syntax)
    a, b = pydicom.dcmread(src), pydicom.dcmread(dst)
    assert b.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(a.pixel_array, b.pixel_array)
    assert (a.SOPInstanceUID, a.PatientName, a.StudyInstanceUID) == (b.SOPInstanceUID, b.PatientName, b.StudyInstanceUID)
    assert dst.stat().st_size < src.stat().st_size


def test_signed_pixels_round_trip(tmp_path: Path) -> None:
    src = make_image(tmp_path / "s.dcm", study_uid=generate_uid(), size=64)
    ds = pydicom.dcmread(src)
    rng = np.random.default_rng(9)
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 16, 15
    ds.PixelData = rng.integers(-2000, 3000, (64, 64), dtype=np.int16).tobytes()
    ds.save_as(src, enforce_file_format=True)
    for syntax in (JPEGLSLossless, JPEG2000Lossless):
        dst = archive_copy(src, tmp_path / f"{syntax.name[:4]}.dcm", syntax)
        assert np.array_equal(pydicom.dcmread(dst).pixel_array, ds.pixel_array)


def test_compressed_input_is_kept_as_sent(tmp_path: Path) -> None:
    jpeg = jpeg_baseline_copy(make_image(tmp_path / "e.dcm", study_uid=generate_uid(), bits=8), tmp_path / "j.dcm")
    dst = archive_copy(jpeg, tmp_path / "arch.dcm", JPEGLSLossless)
    assert dst.read_bytes() == jpeg.read_bytes()
    assert pydicom.dcmread(dst).file_meta.TransferSyntaxUID == JPEGBaseline8Bit


def test_not_lossless_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_image(tmp_path / "src.dcm", study_uid=generate_uid(), size=64)
    real = pydicom.dataset.Dataset.compress

    def lossy(self, syntax, *a, **k):  # an encoder that loses the lowest bit must be caught
        arr = self.pixel_array & ~np.uint16(1)
        return real(self, syntax, arr, *a, **k)

    monkeypatch.setattr(pydicom.dataset.Dataset, "compress", lossy)
    with pytest.raises(NotLossless):
        archive_copy(src, tmp_path / "bad.dcm", JPEGLSLossless)
    assert not (tmp_path / "bad.dcm").exists()


def test_received_studies_are_archived_once(sqlite_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timezone

    from sqlmodel import Session

    from core.config import get_settings, reset_settings_cache
    from core.db import get_engine
    from domain.imaging_tables import ImagingStudy
    from integrations.dicom import index
    from integrations.dicom.archive import archive_received, archive_root
    from integrations.dicom.instance_facts import read_facts
    from integrations.dicom.store import DicomStore

    monkeypatch.setenv("RADLOOP_DICOM_ARCHIVE_COMPRESSION", "jpeg-ls")
    reset_settings_cache()
    settings = get_settings()
    store = DicomStore(settings.data_dir / "dicom")
    src = make_image(tmp_path / "in.dcm", study_uid=generate_uid())
    ds = pydicom.dcmread(src)
    facts = read_facts(src, str(ds.SOPClassUID), str(ds.SOPInstanceUID))
    rel = store.rel_path(facts.study_instance_uid, facts.series_instance_uid, facts.sop_instance_uid)
    store.write(rel, src.read_bytes())
    index.index_instance(facts, rel, src.stat().st_size, "CT1")
    assert archive_received(settings, store.root) == 0  # not received yet
    with Session(get_engine()) as s:
        study = s.get(ImagingStudy, facts.study_instance_uid)
        study.images_received_at = datetime.now(timezone.utc)
        s.add(study)
        s.commit()
    assert archive_received(settings, store.root) == 1
    copy = archive_root(settings) / rel
    assert pydicom.dcmread(copy).file_meta.TransferSyntaxUID == JPEGLSLossless
    assert np.array_equal(pydicom.dcmread(copy).pixel_array, ds.pixel_array)
    assert archive_received(settings, store.root) == 0  # idempotent
