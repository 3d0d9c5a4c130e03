"""'Images received' (issue 3): complete per MPPS references, or stable for the configured time."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.db import get_engine
from domain.imaging_tables import ImagingStudy
from domain.tables import DomainEvent, ExamRecord, WorklistEntry
from integrations.dicom import completeness
from tests.support.dicom_files import completed, in_progress, make_image
from tests.support.dicom_tools import mpps_send, run_tool, running_listener
from tests.support.loop_driver import LoopDriver
from worker import build_worker


def _study(acc: str) -> tuple[str, str]:
    with Session(get_engine()) as s:
        e = s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one()
        return e.study_instance_uid, e.patient_id


def _received(acc: str) -> list[DomainEvent]:
    with Session(get_engine()) as s:
        return list(s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc, DomainEvent.actor == "dicom",
                                                     DomainEvent.kind == "images_received")))


async def test_images_received_by_mpps_references_and_by_stability(ts_env, sqlite_database, task_queue, tmp_path: Path) -> None:
    async with build_worker(ts_env.client, task_queue), running_listener(ts_env.client) as lsn:
        d = LoopDriver(ts_env.client, task_queue)
        acc = await d.arrived()
        study, pid = _study(acc)
        series = generate_uid()
        images = [make_image(tmp_path / f"i{i}.dcm", study_uid=study, series_uid=series, patient_id=pid, accession=acc,
                             instance=i + 1, seed=i) for i in range(3)]
        sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in images]

        async def store(files: list[Path]) -> None:
            res = await run_tool(["storescu", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port), *map(str, files)])
            assert res.code == 0, res.stderr

        uid = generate_uid()
        assert (await asyncio.to_thread(mpps_send, lsn.port, "CT1", "create", uid, in_progress(acc, study))).status == 0
        await store(images[:2])
        assert (await asyncio.to_thread(mpps_send, lsn.port, "CT1", "set", uid, completed(series, sops))).status == 0
        assert _received(acc) == []  # the MPPS names a third image that has not arrived
        assert completeness.sweep(stable_seconds=0) == []  # stability does not override MPPS references
        await store(images[2:])
        [event] = _received(acc)
        assert event.detail["instances"] == 3 and "MPPS" in event.summary
        await store(images)  # resent: still one event
        assert len(_received(acc)) == 1

        # No MPPS at all: received once no image has arrived for the stable time, and that completes the exam.
        acc2 = (await d.place()).accession_number
        await d.check_in(acc2)
        await d.wait_step(acc2, "arrived")
        study2, pid2 = _study(acc2)
        await store([make_image(tmp_path / "solo.dcm", study_uid=study2, patient_id=pid2, accession=acc2)])
        assert completeness.sweep(stable_seconds=3600) == [] and _received(acc2) == []
        marked = completeness.sweep(stable_seconds=0)
        assert [(m.accession, m.how, m.num_instances, m.calling_ae) for m in marked] == [(acc2, "stable", 1, "STORESCU")]
        lsn.ctx.announcer.announce(marked)  # what the listener's sweeper does
        await d.wait_step(acc2, "image_qc")
        assert len(_received(acc2)) == 1
        with Session(get_engine()) as s:
            assert s.get(ImagingStudy, study2).images_received_at is not None
            exam = s.exec(select(ExamRecord).where(ExamRecord.accession_number == acc2)).one()
            assert exam.source == "storage" and exam.completed_at is not None and exam.technologist_id == "modality:STORESCU"

        # Each received study gets an objective QC suggestion on the order's timeline.
        for accession in (acc, acc2):
            for _ in range(100):
                with Session(get_engine()) as s:
                    qc = s.exec(select(DomainEvent).where(DomainEvent.accession_number == accession,
                                                          DomainEvent.kind == "image_qc_suggested")).all()
                if qc:
                    break
                await asyncio.sleep(0.1)
            [suggestion] = qc
            assert suggestion.detail["grade"] in ("A", "B", "C", "D") and suggestion.detail["images"]
            assert "PixelSpacing" in suggestion.summary  # the test phantoms carry no pixel spacing


async def test_announcement_is_retried_until_temporal_answers(ts_env, sqlite_database, task_queue) -> None:
    from integrations.dicom.announcer import Announcer
    from integrations.dicom.completeness import Received
    from integrations.dicom.loop_bridge import LoopBridge

    attempts = 0

    async def connect_second_time():
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("Temporal not up yet")
        return ts_env.client

    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await d.arrived()
        announcer = Announcer(LoopBridge(connect_second_time, asyncio.get_running_loop()))
        announcer.announce([Received(study_instance_uid=generate_uid(), accession=acc, num_series=1, num_instances=4,
                                     how="stable", calling_ae="CT2")])
        await d.wait_step(acc, "image_qc")
        assert attempts == 2
