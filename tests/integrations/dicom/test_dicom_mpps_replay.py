"""A reconciled MPPS is replayed onto the order's exam loop (R6.3, R4.2.3), once, never moving a loop back.

A modality (pynetdicom, as in test_dicom_mpps.py) sends MPPS for an accession RadLoop does not know;
a technologist links it over the HTTP API; the loop then shows what the MPPS said.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.db import get_engine
from domain.imaging_tables import MppsRecord
from domain.loop import exam_loop_workflow_id
from domain.tables import DomainEvent, ExamRecord
from integrations.dicom import mpps_replay
from integrations.dicom.loop_bridge import LoopBridge
from tests.support.dicom_files import completed, in_progress
from tests.support.dicom_tools import mpps_send, running_listener
from tests.support.loop_driver import LoopDriver
from worker import build_worker

TECH = {"Authorization": "Bearer dev-technologist"}


def _events(acc: str, kind: str) -> list[DomainEvent]:
    with Session(get_engine()) as s:
        return list(s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc, DomainEvent.kind == kind)))


async def _exam_updates(client, acc: str) -> list[str]:
    """The record_exam_event updates the loop's history accepted, by update ID."""
    ids = []
    async for ev in client.get_workflow_handle(exam_loop_workflow_id(acc)).fetch_history_events():
        if ev.HasField("workflow_execution_update_accepted_event_attributes"):
            attrs = ev.workflow_execution_update_accepted_event_attributes
            if attrs.accepted_request.input.name == "record_exam_event":
                ids.append(attrs.protocol_instance_id)
    return ids


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


async def test_linking_an_unmatched_mpps_replays_started_and_completed_once(ts_env, sqlite_database, task_queue) -> None:
    from api.main import create_app

    async with build_worker(ts_env.client, task_queue), running_listener(ts_env.client) as lsn:
        d = LoopDriver(ts_env.client, task_queue)
        acc = await d.arrived()

        async def send(op: str, uid: str, ds: Dataset):
            return await asyncio.to_thread(mpps_send, lsn.port, "CT1", op, uid, ds)

        # The modality typed the accession wrong: the MPPS is kept for reconciliation, the loop hears nothing.
        uid, series, sops = generate_uid(), generate_uid(), [generate_uid() for _ in range(3)]
        assert (await send("create", uid, in_progress("TYPO-1"))).status == 0x0000
        assert (await send("set", uid, completed(series, sops))).status == 0x0000
        assert (await d.status(acc)).step.value == "arrived"

        app = create_app(temporal_client=ts_env.client)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            url = f"/api/v1/reconciliation/unmatched_mpps:{uid}/resolve"
            body = {"accession_number": acc, "note": "CT1 typed the accession wrong"}
            linked = await api.post(url, json=body, headers=TECH)
            assert linked.status_code == 200, linked.text
            assert linked.json()["replay"] == [{"kind": "started", "outcome": "replayed", "reason": None},
                                               {"kind": "completed", "outcome": "replayed", "reason": None}]
            await d.wait_step(acc, "image_qc")  # exam started, then completed: QC is next

            again = await api.post(url, json=body, headers=TECH)
            assert again.status_code == 200 and again.json()["replay"] == linked.json()["replay"]
            listed = (await api.get("/api/v1/reconciliation", headers=TECH, params={"state": "resolved"})).json()
            assert [i["replay"] for i in listed["items"]] == [linked.json()["replay"]]

        # A replay interrupted after the loop took a step but before its outcome was written (a retry)
        # sends the same update ID again: the loop answers as before and records nothing new.
        with Session(get_engine()) as s:
            s.delete(s.get(DomainEvent, f"mpps-replay:{uid}:completed"))
            s.commit()
        bridge = LoopBridge.for_client(ts_env.client, asyncio.get_running_loop())
        steps = await asyncio.to_thread(mpps_replay.replay, bridge, uid, "user:retry")
        assert [(st.kind, st.outcome) for st in steps] == [("started", "replayed"), ("completed", "replayed")]
        assert await _exam_updates(ts_env.client, acc) == [f"mpps:{uid}:started", f"mpps:{uid}:completed"]

        started, ended = _events(acc, "exam_started"), _events(acc, "exam_completed")
        assert len(started) == 1 and len(ended) == 1
        assert started[0].actor == "modality:CT1" and started[0].detail["station_ae"] == "CT1"
        assert datetime.fromisoformat(started[0].detail["performed_at"]) == datetime(2026, 11, 27, 2, 15, tzinfo=timezone.utc)
        assert ended[0].detail["performed_series"] == [{"series_instance_uid": series, "num_instances": 3}]
        assert ended[0].detail["contrast_agent"] == "iohexol"
        with Session(get_engine()) as s:
            exam = s.exec(select(ExamRecord).where(ExamRecord.accession_number == acc)).one()
            assert (exam.source, exam.technologist_id, exam.method) == ("mpps", "modality:CT1", "CT chest with contrast")
            assert (exam.contrast_used, exam.contrast_agent, exam.contrast_volume_ml) == (True, "iohexol", 80.0)
            # The modality's times (10:15 and 10:20 in Asia/Shanghai), not the moment of the link.
            assert _utc(exam.started_at) == datetime(2026, 11, 27, 2, 15, tzinfo=timezone.utc)
            assert _utc(exam.completed_at) == datetime(2026, 11, 27, 2, 20, tzinfo=timezone.utc)
            assert s.get(MppsRecord, uid).accession_number == acc


async def test_replay_never_moves_a_loop_back_and_a_later_n_set_reaches_the_linked_loop(
        ts_env, sqlite_database, task_queue) -> None:
    from api.main import create_app

    async with build_worker(ts_env.client, task_queue), running_listener(ts_env.client) as lsn:
        d = LoopDriver(ts_env.client, task_queue)
        done, waiting = (await d.place()).accession_number, (await d.place()).accession_number
        for acc in (done, waiting):
            await d.check_in(acc)
            await d.wait_step(acc, "arrived")
        await d.perform_exam(done)  # the technologist recorded this exam by hand
        await d.wait_step(done, "image_qc")

        async def send(op: str, uid: str, ds: Dataset):
            return await asyncio.to_thread(mpps_send, lsn.port, "CT2", op, uid, ds)

        late, open_step = generate_uid(), generate_uid()
        assert (await send("create", late, in_progress("TYPO-2"))).status == 0x0000
        assert (await send("set", late, completed(generate_uid(), [], status="DISCONTINUED"))).status == 0x0000
        assert (await send("create", open_step, in_progress("TYPO-3"))).status == 0x0000

        app = create_app(temporal_client=ts_env.client)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            res = await api.post(f"/api/v1/reconciliation/unmatched_mpps:{late}/resolve", headers=TECH,
                                 json={"accession_number": done, "note": "same patient, CT2"})
            assert res.status_code == 200, res.text
            assert [(st["kind"], st["outcome"]) for st in res.json()["replay"]] == [
                ("started", "skipped"), ("discontinued", "skipped")]
            assert res.json()["replay"][0]["reason"] == "cannot start the exam at step image_qc"
            st = await d.status(done)
            assert (st.step.value, st.exam_attempt) == ("image_qc", 1)  # not moved back
            skipped = _events(done, "mpps_replay_skipped")
            assert sorted(e.detail["step"] for e in skipped) == ["discontinued", "started"]

            # Linked while the exam runs: started is replayed, and the modality's own N-SET then completes it.
            res = await api.post(f"/api/v1/reconciliation/unmatched_mpps:{open_step}/resolve", headers=TECH,
                                 json={"accession_number": waiting, "note": "CT2 typo"})
            assert [(st["kind"], st["outcome"]) for st in res.json()["replay"]] == [("started", "replayed")]
            await d.wait_step(waiting, "in_exam")
        assert (await send("set", open_step, completed(generate_uid(), [generate_uid()]))).status == 0x0000
        await d.wait_step(waiting, "image_qc")
        with Session(get_engine()) as s:
            row = s.get(MppsRecord, open_step)
            assert (row.status, row.accession_number) == ("COMPLETED", waiting)
        assert await _exam_updates(ts_env.client, waiting) == [f"mpps:{open_step}:started", f"mpps:{open_step}:completed"]
