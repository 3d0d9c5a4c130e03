"""Query/Retrieve SCP (R4.3.2): C-FIND at four levels, C-GET and C-MOVE of stored files, with DCMTK."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, generate_uid

from core.config import reset_settings_cache
from tests.support.dicom_files import compressed_copy, dataset_bytes, make_image
from tests.support.dicom_tools import DCMTK_ENV, free_port, run_tool, running_listener


async def findscu(port: int, model: str, keys: list[str], out: Path) -> list[pydicom.Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    argv = ["findscu", model, "-aec", "RADLOOP", "-X", "-od", str(out)]
    for k in keys:
        argv += ["-k", k]
    res = await run_tool([*argv, "127.0.0.1", str(port)])
    assert res.code == 0, res.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def _sop(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@pytest.fixture
def move_dest(monkeypatch: pytest.MonkeyPatch) -> int:
    port = free_port()
    monkeypatch.setenv("RADLOOP_DICOM_MOVE_DESTINATIONS", f"DEST=127.0.0.1:{port}")
    reset_settings_cache()
    return port


async def test_find_get_move(sqlite_database, move_dest: int, tmp_path: Path) -> None:
    async with running_listener() as lsn:
        study_a, study_b, series_a2 = generate_uid(), generate_uid(), generate_uid()
        a1 = [make_image(tmp_path / f"a1_{i}.dcm", study_uid=study_a, series_uid=None if i == 0 else None,
                         patient_id="P-QR", accession="ACC-A", instance=i + 1, seed=i) for i in range(1)]
        series_a1 = str(pydicom.dcmread(a1[0]).SeriesInstanceUID)
        a1 += [make_image(tmp_path / f"a1_{i}.dcm", study_uid=study_a, series_uid=series_a1, patient_id="P-QR",
                          accession="ACC-A", instance=i + 1, seed=i) for i in range(1, 3)]
        a2 = [make_image(tmp_path / "a2.dcm", study_uid=study_a, series_uid=series_a2, patient_id="P-QR",
                         accession="ACC-A", modality="OT", bits=8)]
        j2k = compressed_copy(a1[0], tmp_path / "a1_j2k.dcm", JPEG2000Lossless)  # same series, own instance
        b = [make_image(tmp_path / "b.dcm", study_uid=study_b, patient_id="P-QR", accession="ACC-B", modality="MR")]
        ds = pydicom.dcmread(b[0])
        ds.StudyDate = "20250101"
        ds.save_as(b[0], enforce_file_format=True)
        for argv in (["storescu"], ["storescu", "-xv"]):
            files = [str(p) for p in (a1 + a2 + b)] if len(argv) == 1 else [str(j2k)]
            res = await run_tool([*argv, "-aec", "RADLOOP", "127.0.0.1", str(lsn.port), *files])
            assert res.code == 0, res.stderr
        out = tmp_path / "rsp"

        # C-FIND at each level, Study Root and Patient Root.
        studies = await findscu(lsn.port, "-S", ["QueryRetrieveLevel=STUDY", "PatientID=P-QR", "StudyInstanceUID",
                                                  "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "PatientName"], out)
        by_uid = {s.StudyInstanceUID: s for s in studies}
        assert set(by_uid) == {study_a, study_b}
        assert int(by_uid[study_a].NumberOfStudyRelatedInstances) == 5
        assert set(by_uid[study_a].ModalitiesInStudy) == {"CT", "OT"}
        assert by_uid[study_a].PatientName == "张三" and by_uid[study_a].RetrieveAETitle == "RADLOOP"
        recent = await findscu(lsn.port, "-S", ["QueryRetrieveLevel=STUDY", "StudyDate=20260101-", "StudyInstanceUID"], out)
        assert {s.StudyInstanceUID for s in recent} == {study_a}
        by_acc = await findscu(lsn.port, "-S", ["QueryRetrieveLevel=STUDY", "AccessionNumber=ACC-B", "StudyInstanceUID"], out)
        assert [s.StudyInstanceUID for s in by_acc] == [study_b]
        patients = await findscu(lsn.port, "-P", ["QueryRetrieveLevel=PATIENT", "SpecificCharacterSet=ISO_IR 192", "PatientName=张*", "PatientID",
                                                   "NumberOfPatientRelatedStudies"], out)
        assert [(p.PatientID, int(p.NumberOfPatientRelatedStudies)) for p in patients] == [("P-QR", 2)]
        series = await findscu(lsn.port, "-S", ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study_a}",
                                                 "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances"], out)
        assert {(s.SeriesInstanceUID, s.Modality, int(s.NumberOfSeriesRelatedInstances)) for s in series} == {
            (series_a1, "CT", 4), (series_a2, "OT", 1)}
        images = await findscu(lsn.port, "-P", ["QueryRetrieveLevel=IMAGE", "PatientID=P-QR", f"StudyInstanceUID={study_a}",
                                                 f"SeriesInstanceUID={series_a1}", "SOPInstanceUID", "InstanceNumber"], out)
        assert {i.SOPInstanceUID for i in images} == {_sop(p) for p in a1 + [j2k]}
        assert "NumberOfSeriesRelatedInstances" not in images[0]

        # C-GET: the uncompressed series comes back byte for byte.
        got = tmp_path / "got"
        got.mkdir()
        res = await run_tool(["getscu", "-S", "-aec", "RADLOOP", "-od", str(got), "-k", "QueryRetrieveLevel=SERIES",
                              f"-k", f"StudyInstanceUID={study_a}", "-k", f"SeriesInstanceUID={series_a2}",
                              "127.0.0.1", str(lsn.port)])
        assert res.code == 0, res.stderr
        received = list(got.iterdir())
        assert len(received) == 1 and dataset_bytes(received[0]) == dataset_bytes(a2[0])
        missing_key = await run_tool(["getscu", "-S", "-aec", "RADLOOP", "-od", str(got), "-k", "QueryRetrieveLevel=STUDY",
                                      "127.0.0.1", str(lsn.port)])
        assert "datasetdoesnotmatchsopclass" in (missing_key.stderr + missing_key.stdout).lower()  # 0xA900

        # C-MOVE to a configured AE (DCMTK storescp), JPEG 2000 file included, sent as stored.
        moved = tmp_path / "moved"
        moved.mkdir()
        scp = subprocess.Popen(["storescp", "+xv", "-aet", "DEST", "-od", str(moved), str(move_dest)], env=DCMTK_ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(0.3)
            res = await run_tool(["movescu", "-S", "-aec", "RADLOOP", "-aem", "DEST", "-k", "QueryRetrieveLevel=SERIES",
                                  "-k", f"StudyInstanceUID={study_a}", "-k", f"SeriesInstanceUID={series_a1}",
                                  "127.0.0.1", str(lsn.port)])
            assert res.code == 0, res.stderr
            unknown = await run_tool(["movescu", "-S", "-aec", "RADLOOP", "-aem", "NOWHERE", "-k", "QueryRetrieveLevel=STUDY",
                                      "-k", f"StudyInstanceUID={study_b}", "127.0.0.1", str(lsn.port)])
            assert "movedestinationunknown" in unknown.stderr.lower()  # 0xA801
        finally:
            scp.terminate()
            scp.wait()
        originals = {_sop(p): dataset_bytes(p) for p in a1 + [j2k]}
        arrived = {_sop(p): dataset_bytes(p) for p in moved.iterdir()}
        assert arrived == originals
