"""The whole loop under the time-skipping server, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.booking_tables import SlotBooking
from domain.queue_tables import QueueCall, QueueTicket
from domain.loop import LoopStatus, exam_loop_workflow_id
from domain.tables import (
    DomainEvent,
    ExamOrder,
    ExamRecord,
    HumanTask,
    ImageQCGrade,
    QueueEntry,
    ReportDistribution,
    ReportVersion,
    WorklistEntry,
)
from tests.support.loop_driver import LoopDriver
from worker import build_worker


async def test_order_to_published_report(ts_env, database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        order = await d.place()
        acc = order.accession_number
        await d.wait_step(acc, "scheduled")
        await d.check_in(acc)
        await d.wait_step(acc, "arrived")
        await d.perform_exam(acc, contrast=True)
        await d.grade(acc, "B")
        await d.report(acc)
        st = await d.wait_step(acc, "published")
        assert st.valid_report_version == 3 and st.last_grade == "B"

        with Session(get_engine()) as s:
            row = s.get(ExamOrder, acc)
            assert (row.step, row.status) == ("published", "reported")
            booked = s.exec(select(SlotBooking).where(SlotBooking.accession_number == acc)).one()
            assert booked.room_id in ("CT1", "CT2") and (booked.state, booked.channel) == ("booked", "system")
            worklist = s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one()
            assert worklist.status == "completed" and worklist.room_id == booked.room_id
            assert s.exec(select(QueueEntry).where(QueueEntry.accession_number == acc)).one().state == "done"
            # The call desk's ticket followed the loop: joined at check-in, called, finished.
            ticket = s.exec(select(QueueTicket).where(QueueTicket.accession_number == acc)).one()
            assert (ticket.state, ticket.queue_id, ticket.live_accession) == ("done", f"room-{booked.room_id}", None)
            assert [c.mode for c in s.exec(select(QueueCall).where(QueueCall.ticket_id == ticket.id)
                                           .order_by(QueueCall.id))] == ["join", "finish"]
            exam = s.exec(select(ExamRecord).where(ExamRecord.accession_number == acc)).one()
            assert exam.contrast_used and exam.contrast_agent == "iohexol" and exam.method == "CT chest plain"
            assert s.exec(select(ImageQCGrade).where(ImageQCGrade.accession_number == acc)).one().grade == "B"
            versions = s.exec(select(ReportVersion).where(ReportVersion.accession_number == acc).order_by(ReportVersion.version)).all()
            assert [(v.tier, v.status, v.author_role) for v in versions] == [
                ("draft", "working", "resident"), ("preliminary", "working", "radiologist"),
                ("final", "valid", "senior_radiologist"),
            ]
            assert versions[-1].signed_by == "u-senior_radiologist"
            assert s.exec(select(ReportDistribution).where(ReportDistribution.accession_number == acc)).one().kind == "final"
            tasks = s.exec(select(HumanTask).where(HumanTask.accession_number == acc)).all()
            assert {t.task_type for t in tasks} == {
                "check_in", "perform_exam", "image_qc", "report_draft", "report_preliminary", "report_review"}
            assert all(t.state == "done" and t.completed_by for t in tasks)
            kinds = [e.kind for e in s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc).order_by(DomainEvent.at))]
            assert "appointment_booked" in kinds and "report_signed" in kinds and "report_published" in kinds

        # The correction window closes the loop (30 days, skipped in milliseconds).
        handle = ts_env.client.get_workflow_handle(exam_loop_workflow_id(acc), result_type=LoopStatus)
        await ts_env.sleep(timedelta(days=31))
        final = await handle.result()
        assert final.step == "closed"


async def test_duplicate_order_starts_one_loop(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        first = await d.place(placer_order_number="DUP-1")
        second = await d.place(placer_order_number="DUP-1")
        assert first.accession_number == second.accession_number
        with Session(get_engine()) as s:
            assert len(s.exec(select(ExamOrder).where(ExamOrder.placer_order_number == "DUP-1")).all()) == 1
        await d.wait_step(first.accession_number, "scheduled")


@pytest.mark.parametrize("grade", ["D"])
async def test_grade_d_sends_back_to_re_exam(ts_env, sqlite_database, task_queue, grade) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.check_in(acc)
        await d.perform_exam(acc)
        await d.grade(acc, grade, reason="motion artefact")
        st = await d.wait_step(acc, "arrived")
        assert st.exam_attempt == 2
        await d.perform_exam(acc)
        await d.grade(acc, "A")
        await d.wait_step(acc, "reporting")
        with Session(get_engine()) as s:
            grades = s.exec(select(ImageQCGrade).where(ImageQCGrade.accession_number == acc).order_by(ImageQCGrade.attempt)).all()
            assert [(g.attempt, g.grade, g.reason) for g in grades] == [(1, "D", "motion artefact"), (2, "A", None)]
            assert len(s.exec(select(ExamRecord).where(ExamRecord.accession_number == acc)).all()) == 2
