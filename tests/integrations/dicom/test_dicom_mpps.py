"""MPPS N-CREATE / N-SET drive the exam loop (R6.3), sent by pynetdicom as a modality would."""
from __future__ import annotations

import asyncio

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.db import get_engine
from domain.imaging_tables import MppsRecord, ReconciliationItem
from domain.tables import ExamRecord
from tests.support.dicom_files import completed, in_progress
from tests.support.dicom_tools import mpps_send, running_listener
from tests.support.loop_driver import LoopDriver
from worker import build_worker


async def test_mpps_drives_the_exam_and_refuses_invalid_transitions(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue), running_listener(ts_env.client) as lsn:
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.wait_step(acc, "scheduled")

        async def send(op: str, uid: str, ds: Dataset):
            return await asyncio.to_thread(mpps_send, lsn.port, "CT1", op, uid, ds)

        uid = generate_uid()
        # Not checked in yet: the loop refuses, the modality hears why (0x0110), nothing is recorded.
        early = await send("create", uid, in_progress(acc))
        assert (early.status, early.error_comment) == (0x0110, "cannot start the exam at step scheduled")
        with Session(get_engine()) as s:
            assert s.get(MppsRecord, uid) is None

        await d.check_in(acc)
        await d.wait_step(acc, "arrived")
        assert (await send("create", uid, in_progress(acc))).status == 0x0000
        await d.wait_step(acc, "in_exam")
        assert (await send("create", uid, in_progress(acc))).status == 0x0111  # duplicate SOP instance
        bad = in_progress(acc)
        bad.PerformedProcedureStepStatus = "COMPLETED"
        assert (await send("create", generate_uid(), bad)).status == 0x0106  # N-CREATE must be IN PROGRESS
        assert (await send("set", generate_uid(), completed("1.2.9", []))).status == 0x0112  # no such instance
        wrong = completed("1.2.9", [])
        wrong.PerformedProcedureStepStatus = "FINISHED"
        assert (await send("set", uid, wrong)).status == 0x0106

        series_uid, sops = generate_uid(), [generate_uid() for _ in range(3)]
        assert (await send("set", uid, completed(series_uid, sops))).status == 0x0000
        await d.wait_step(acc, "image_qc")
        again = await send("set", uid, completed(series_uid, sops))
        assert (again.status, again.error_id) == (0x0110, 0xA710)  # PS3.4 F.7.2.2: no longer updatable

        with Session(get_engine()) as s:
            exam = s.exec(select(ExamRecord).where(ExamRecord.accession_number == acc)).one()
            assert (exam.source, exam.technologist_id) == ("mpps", "modality:CT1")
            assert (exam.method, exam.contrast_used, exam.contrast_agent, exam.contrast_volume_ml) == (
                "CT chest with contrast", True, "iohexol", 80.0)
            row = s.get(MppsRecord, uid)
            assert row.status == "COMPLETED" and row.calling_ae == "CT1"
            assert row.performed_series == [{"series_instance_uid": series_uid, "sop_instance_uids": sops}]


async def test_mpps_discontinued_returns_the_patient_and_unknown_accession_is_reconciled(
        ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue), running_listener(ts_env.client) as lsn:
        d = LoopDriver(ts_env.client, task_queue)
        acc = await d.arrived()

        async def send(op: str, uid: str, ds: Dataset):
            return await asyncio.to_thread(mpps_send, lsn.port, "CT2", op, uid, ds)

        uid = generate_uid()
        assert (await send("create", uid, in_progress(acc))).status == 0x0000
        await d.wait_step(acc, "in_exam")
        assert (await send("set", uid, completed(generate_uid(), [], status="DISCONTINUED"))).status == 0x0000
        st = await d.wait_step(acc, "arrived")
        assert st.exam_attempt == 2

        stray = generate_uid()
        assert (await send("create", stray, in_progress("NOSUCHACC"))).status == 0x0000
        assert (await send("set", stray, completed(generate_uid(), []))).status == 0x0000
        with Session(get_engine()) as s:
            item = s.get(ReconciliationItem, f"unmatched_mpps:{stray}")
            assert item is not None and item.state == "open" and item.accession_number == "NOSUCHACC"
            assert item.patient_name == "张三"
            assert s.get(MppsRecord, stray).status == "COMPLETED"
