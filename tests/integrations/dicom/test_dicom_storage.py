"""Storage SCP (R4.2.3, R4.3.2) with DCMTK storescu: raw bytes stored, indexed, linked to the order."""
from __future__ import annotations

from pathlib import Path

from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless, generate_uid
from sqlmodel import Session, select

from core.db import get_engine
from domain.imaging_tables import ImagingInstance, ImagingSeries, ImagingStudy, ReconciliationItem
from domain.tables import WorklistEntry
from tests.support.dicom_files import compressed_copy, dataset_bytes, file_meta_uid, jpeg_baseline_copy, make_image
from tests.support.dicom_tools import run_tool, running_listener
from tests.support.loop_driver import LoopDriver
from worker import build_worker


# storescu proposes a compressed syntax only when told which (and then uncompressed too).
PROPOSE = {str(JPEGLSLossless): "-xt", str(JPEG2000Lossless): "-xv", str(RLELossless): "-xr", str(JPEGBaseline8Bit): "-xy"}


async def storescu(port: int, files: list[Path], aet: str = "CT1") -> None:
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(PROPOSE.get(file_meta_uid(f), ""), []).append(f)
    for option, group in groups.items():
        argv = ["storescu", *([option] if option else []), "-aet", aet, "-aec", "RADLOOP", "127.0.0.1", str(port)]
        res = await run_tool(argv + [str(f) for f in group])
        assert res.code == 0 and "Store Failed" not in res.stderr, res.stderr + res.stdout


async def test_store_all_syntaxes_raw_index_link_and_idempotency(ts_env, database, task_queue, tmp_path: Path) -> None:
    async with build_worker(ts_env.client, task_queue), running_listener(ts_env.client) as lsn:
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.wait_step(acc, "scheduled")
        with Session(get_engine()) as s:
            entry = s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one()
        study, pid = entry.study_instance_uid, entry.patient_id
        plain = make_image(tmp_path / "ct.dcm", study_uid=study, patient_id=pid, accession=acc)
        series2 = generate_uid()
        files = [
            plain,
            compressed_copy(plain, tmp_path / "jls.dcm", JPEGLSLossless),
            compressed_copy(plain, tmp_path / "j2k.dcm", JPEG2000Lossless),
            compressed_copy(plain, tmp_path / "rle.dcm", RLELossless),
            jpeg_baseline_copy(make_image(tmp_path / "sc8.dcm", study_uid=study, series_uid=series2, patient_id=pid,
                                          accession=acc, bits=8, modality="OT"), tmp_path / "jpeg.dcm"),
        ]
        await storescu(lsn.port, files)

        store = lsn.ctx.store  # type: ignore[attr-defined]
        with Session(get_engine()) as s:
            rows = s.exec(select(ImagingInstance).where(ImagingInstance.study_instance_uid == study)).all()
            assert len(rows) == 5
            by_ts = {r.transfer_syntax_uid for r in rows}
            assert by_ts == {file_meta_uid(f) for f in files}
            for f in files:
                import pydicom
                sop = str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                row = s.get(ImagingInstance, sop)
                # Written as received: the data set bytes are the sender's, not a re-encoding.
                assert dataset_bytes(store.path(row.rel_path)) == dataset_bytes(f)
                assert row.rel_path == f"{study}/{row.series_instance_uid}/{sop}.dcm"
            st = s.get(ImagingStudy, study)
            assert (st.order_accession, st.num_instances, st.num_series) == (acc, 5, 2)
            assert set(st.modalities.split()) == {"CT", "OT"} and st.patient_name == "张三"
            assert s.get(ImagingSeries, series2).num_instances == 1

        # The same SOP instances again: success, nothing doubles.
        await storescu(lsn.port, files[:2])
        with Session(get_engine()) as s:
            assert s.get(ImagingStudy, study).num_instances == 5
            assert len(s.exec(select(ImagingInstance).where(ImagingInstance.study_instance_uid == study)).all()) == 5

        # Images that match no order are kept and put on the reconciliation list.
        stray_study = generate_uid()
        await storescu(lsn.port, [make_image(tmp_path / "stray.dcm", study_uid=stray_study, accession="NOPE", patient_id="X9")])
        with Session(get_engine()) as s:
            assert s.get(ImagingStudy, stray_study).order_accession is None
            item = s.get(ReconciliationItem, f"unmatched_study:{stray_study}")
            assert item.state == "open" and item.accession_number == "NOPE" and item.patient_id == "X9"

        # Right accession, wrong patient: not linked, reconciled.
        wrong_patient = generate_uid()
        await storescu(lsn.port, [make_image(tmp_path / "wp.dcm", study_uid=wrong_patient, accession=acc, patient_id="OTHER")])
        with Session(get_engine()) as s:
            assert s.get(ImagingStudy, wrong_patient).order_accession is None
            assert "does not match" in s.get(ReconciliationItem, f"unmatched_study:{wrong_patient}").reason
