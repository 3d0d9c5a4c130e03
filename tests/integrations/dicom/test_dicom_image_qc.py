"""Objective image QC (R8.2.3): the metrics measure what they claim and the grade follows them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import JPEGLSLossless, generate_uid

from integrations.dicom.image_qc import assess_files, measure, noise_sigma, suggest
from tests.support.dicom_files import compressed_copy, make_image


def _with(path: Path, **attrs: object) -> Path:
    ds = pydicom.dcmread(path)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def _ct(path: Path, noise: float, seed: int = 0) -> Path:
    """A 256x256 disc phantom: background 1024, disc +1000, Gaussian noise of known sigma."""
    make_image(path, study_uid=generate_uid(), accession="A1", size=256, seed=seed)
    ds = pydicom.dcmread(path)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    disc = ((yy - 128) ** 2 + (xx - 128) ** 2) < 80 ** 2
    ds.PixelData = (disc * 1000 + 1024 + rng.normal(0, noise, (256, 256))).clip(0, 4095).astype(np.uint16).tobytes()
    for k, v in {"PixelSpacing": [0.7, 0.7], "SliceThickness": 1.0, "KVP": 120, "RescaleSlope": 1,
                 "RescaleIntercept": -1024}.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_noise_estimate_matches_the_noise_put_in() -> None:
    rng = np.random.default_rng(3)
    flat = 500 + rng.normal(0, 12, (256, 256))
    assert abs(noise_sigma(flat) - 12) < 1.0
    yy, xx = np.mgrid[:256, :256]
    structured = flat + (((yy - 128) ** 2 + (xx - 128) ** 2) < 60 ** 2) * 800  # edges barely move it
    assert abs(noise_sigma(structured) - 12) < 2.0


def test_grades_follow_snr_and_missing_tags(tmp_path: Path) -> None:
    clean = measure(pydicom.dcmread(_ct(tmp_path / "clean.dcm", noise=10)))
    assert abs(clean.noise_sigma - 10) < 1.5 and clean.snr > 150 and clean.cnr > 80 and clean.missing_tags == []
    assert suggest([clean]).grade == "A"

    noisy = measure(pydicom.dcmread(_ct(tmp_path / "noisy.dcm", noise=250, seed=1)))
    assert noisy.snr < clean.snr / 10
    assert suggest([noisy]).grade in ("B", "C")

    hopeless = measure(pydicom.dcmread(_ct(tmp_path / "hopeless.dcm", noise=1200, seed=2)))
    assert suggest([hopeless]).grade == "D"

    no_kvp = _with(_ct(tmp_path / "nokvp.dcm", noise=10), KVP=None)
    m = measure(pydicom.dcmread(no_kvp))
    assert m.missing_tags == ["KVP"]
    s = suggest([m])
    assert s.grade == "B" and "KVP" in s.reasons[0]
    no_id = _with(_ct(tmp_path / "noid.dcm", noise=10), AccessionNumber="")
    assert suggest([measure(pydicom.dcmread(no_id))]).grade == "D"


def test_assess_files_decodes_compressed_and_counts_unreadable(tmp_path: Path) -> None:
    good = _ct(tmp_path / "g.dcm", noise=10)
    jls = compressed_copy(good, tmp_path / "g_jls.dcm", JPEGLSLossless)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(good.read_bytes()[:-20000])
    assert assess_files([good, jls]).grade == "A"
    result = assess_files([good, jls, broken])
    assert result.grade in ("B", "C", "D") and any("could not be decoded" in r for r in result.reasons)
