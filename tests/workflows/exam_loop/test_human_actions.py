"""Validators refuse impossible human actions before anything reaches history."""
from __future__ import annotations

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.enums import Role
from domain.loop import CancelRequest, ExamEvent, RescheduleRequest, TaskCompletion, exam_loop_workflow_id
from domain.booking_tables import SlotBooking
from domain.queue_tables import QueueTicket
from domain.tables import ExamOrder, HumanTask, NotificationAttempt, QueueEntry, WorklistEntry
from services import loop_commands
from services.errors import Conflict, Forbidden, Invalid, NotFound
from tests.support.loop_driver import LoopDriver, actor, closed_result
from worker import build_worker


async def test_task_validator_rejects_wrong_role_bad_form_and_double_completion(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        wid = exam_loop_workflow_id(acc)
        task_id = await d.wait_task(wid, "check_in")
        good = {"identity_document_type": "passport", "identity_verified": True}
        with pytest.raises(Forbidden, match="technologist may not complete check_in"):
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(task_id=task_id, actor=actor(Role.technologist), data=good))
        with pytest.raises(Invalid, match="identity_document_type"):
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(task_id=task_id, actor=actor(Role.registrar), data={"identity_verified": True}))
        with pytest.raises(Conflict, match="not open"):
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(task_id=f"{wid}/check_in/99", actor=actor(Role.registrar), data=good))
        await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(task_id=task_id, actor=actor(Role.registrar), data=good))
        with pytest.raises(Conflict, match="already completed"):
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(task_id=task_id, actor=actor(Role.registrar), data=good))
        await d.wait_step(acc, "arrived")
        # Rejected updates never reach history: only the accepted completion is there.
        accepted = [e async for e in ts_env.client.get_workflow_handle(wid).fetch_history_events()
                    if e.HasField("workflow_execution_update_accepted_event_attributes")]
        assert len(accepted) == 1


async def test_exam_events_follow_the_exam_state_machine(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        tech = actor(Role.technologist)
        await d.wait_step(acc, "scheduled")
        with pytest.raises(Conflict, match="cannot start the exam at step scheduled"):
            await loop_commands.record_exam_event(ts_env.client, acc, ExamEvent(kind="started", actor=tech))
        await d.check_in(acc)
        await d.wait_step(acc, "arrived")
        with pytest.raises(Conflict, match="has not started"):
            await loop_commands.record_exam_event(ts_env.client, acc, ExamEvent(kind="completed", actor=tech))
        with pytest.raises(Forbidden):
            await loop_commands.record_exam_event(ts_env.client, acc, ExamEvent(kind="started", actor=actor(Role.nurse)))
        await loop_commands.record_exam_event(ts_env.client, acc, ExamEvent(kind="started", actor=tech))
        await d.wait_step(acc, "in_exam")
        with pytest.raises(Conflict):
            await loop_commands.record_exam_event(ts_env.client, acc, ExamEvent(kind="started", actor=tech))
        with pytest.raises(Conflict, match="cannot cancel once the exam has started"):
            await loop_commands.cancel(ts_env.client, acc, CancelRequest(actor=actor(Role.registrar), reason="x"))
        await loop_commands.record_exam_event(ts_env.client, acc, ExamEvent(
            kind="completed", actor=tech, method="CT chest", contrast_used=False, source="mpps"))
        await d.wait_step(acc, "image_qc")
        with Session(get_engine()) as s:
            assert s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one().status == "completed"
            exam_task = s.exec(select(HumanTask).where(HumanTask.accession_number == acc, HumanTask.task_type == "perform_exam")).one()
            assert exam_task.state == "done"
            # Exam started = called to the room on the desk's ticket (by the loop); completed = finished.
            from domain.queue_tables import QueueCall
            ticket = s.exec(select(QueueTicket).where(QueueTicket.accession_number == acc)).one()
            calls = s.exec(select(QueueCall).where(QueueCall.ticket_id == ticket.id).order_by(QueueCall.id)).all()
            assert [(c.mode, c.actor) for c in calls] == [("join", "u-registrar"), ("select", "system"),
                                                          ("finish", "system")]


async def test_cancel_before_exam_runs_the_saga(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = await d.arrived()
        with pytest.raises(Forbidden):
            await loop_commands.cancel(ts_env.client, acc, CancelRequest(actor=actor(Role.technologist), reason="x"))
        await loop_commands.cancel(ts_env.client, acc, CancelRequest(actor=actor(Role.clinician), reason="patient deteriorated"))
        result = await closed_result(ts_env.client, exam_loop_workflow_id(acc))
        assert result.step == "cancelled"
        with Session(get_engine()) as s:
            released = s.exec(select(SlotBooking).where(SlotBooking.accession_number == acc)).one()
            assert (released.state, released.active_accession) == ("cancelled", None)
            assert released.ended_reason == "cancelled: patient deteriorated"
            assert s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one().status == "withdrawn"
            assert s.exec(select(QueueEntry).where(QueueEntry.accession_number == acc)).one().state == "left"
            assert s.exec(select(QueueTicket).where(QueueTicket.accession_number == acc)).one().state == "left"
            assert s.get(ExamOrder, acc).status == "cancelled"
            assert all(t.state in ("done", "cancelled") for t in s.exec(select(HumanTask).where(HumanTask.accession_number == acc)))
            sent = s.exec(select(NotificationAttempt).where(NotificationAttempt.accession_number == acc)).all()
            # The patient's receipt, then the orderer's cancel notice (no reminder: it was not due yet).
            assert sorted((n.purpose, n.recipient.split(":")[0], n.delivered) for n in sent) == [
                ("info", "user", True), ("receipt", "patient", True)]
        assert any("patient deteriorated" in b for b in notify_sink.bodies())
        with pytest.raises((Conflict, NotFound)):
            await loop_commands.cancel(ts_env.client, acc, CancelRequest(actor=actor(Role.clinician), reason="again"))


async def test_reschedule_releases_the_old_slot(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.wait_step(acc, "scheduled")
        with Session(get_engine()) as s:
            first = s.exec(select(SlotBooking).where(SlotBooking.accession_number == acc)).one()
        later = first.start_at.replace(tzinfo=None)
        from datetime import timedelta, timezone
        not_before = (later + timedelta(days=2)).replace(tzinfo=timezone.utc)
        await loop_commands.reschedule(ts_env.client, acc, RescheduleRequest(actor=actor(Role.registrar), reason="patient asked", not_before=not_before))
        async def moved() -> SlotBooking:
            import asyncio
            while True:
                with Session(get_engine()) as s:
                    live = s.exec(select(SlotBooking).where(SlotBooking.active_accession == acc)).first()
                    if live is not None and live.id != first.id:
                        return live
                await asyncio.sleep(0.05)
        import asyncio
        appt = await asyncio.wait_for(moved(), 30)
        assert appt.start_at.replace(tzinfo=timezone.utc) >= not_before
        with Session(get_engine()) as s:
            old = s.get(SlotBooking, first.id)
            assert (old.state, old.ended_reason) == ("cancelled", "rescheduled: patient asked")
        await d.wait_step(acc, "scheduled")
        tid = await d.wait_task(exam_loop_workflow_id(acc), "check_in")
        assert tid.endswith("/check_in/2")
        with Session(get_engine()) as s:
            statuses = sorted(w.status for w in s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)))
            assert statuses == ["scheduled"]  # the one entry, re-published with the new time
            tasks = {t.id: t.state for t in s.exec(select(HumanTask).where(HumanTask.accession_number == acc))}
            assert sorted(tasks.values()) == ["cancelled", "open"]


async def test_order_qc_failure_opens_a_task_for_the_ordering_side(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place(
            procedure={"code": "US-TV", "name": "经阴道超声 / transvaginal ultrasound", "modality": "US", "body_part": "PELVIS"},
            clinical={"purpose": "检查", "diagnosis": "腹痛", "history": ""},
        )).accession_number
        st = await d.wait_step(acc, "order_fix")
        assert [t.task_type for t in st.open_tasks] == ["order_fix"]
        with Session(get_engine()) as s:
            task = s.exec(select(HumanTask).where(HumanTask.accession_number == acc)).one()
            codes = {i["code"] for i in task.context["issues"]}
            assert codes == {"sex_procedure_mismatch", "purpose_unclear"}
            assert task.role == "clinician"
            assert s.get(ExamOrder, acc).status == "qc_failed"
        await d.complete(acc, "order_fix", Role.clinician, {
            "action": "corrected", "procedure_code": "US-ABD", "procedure_name": "腹部超声 / abdominal ultrasound",
            "body_part": "ABDOMEN", "purpose": "排除急性阑尾炎"})
        await d.wait_step(acc, "scheduled")
        with Session(get_engine()) as s:
            order = s.get(ExamOrder, acc)
            assert (order.procedure_code, order.clinical_purpose) == ("US-ABD", "排除急性阑尾炎")
        assert any("not specific" in b for b in notify_sink.bodies())


async def test_stat_order_skips_booking(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place(priority="stat")).accession_number
        await d.wait_step(acc, "scheduled")
        with Session(get_engine()) as s:
            assert s.exec(select(SlotBooking).where(SlotBooking.accession_number == acc)).first() is None
            assert s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one().room_id == "CT1"
            check_in = s.exec(select(HumanTask).where(HumanTask.accession_number == acc)).one()
            assert check_in.priority_rank == 1
        with pytest.raises(Conflict, match="cannot reschedule"):
            await loop_commands.reschedule(ts_env.client, acc, RescheduleRequest(actor=actor(Role.registrar), reason="x"))


async def test_images_received_completes_the_exam_without_mpps(ts_env, sqlite_database, task_queue) -> None:
    from domain.loop import ImagesReceived
    from domain.scheduling import study_instance_uid
    from domain.tables import ExamRecord

    modality = actor(Role.technologist).model_copy(update={"user_id": "modality:CT1"})
    info = ImagesReceived(actor=modality, study_instance_uid=study_instance_uid("x"), num_series=2, num_instances=300, how="stable")
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.wait_step(acc, "scheduled")
        with pytest.raises(Conflict, match="not checked in"):
            await loop_commands.images_received(ts_env.client, acc, info)
        await d.check_in(acc)
        await d.wait_step(acc, "arrived")
        await loop_commands.images_received(ts_env.client, acc, info)
        await d.wait_step(acc, "image_qc")
        with pytest.raises(Conflict, match="already reported"):
            await loop_commands.images_received(ts_env.client, acc, info)
        with Session(get_engine()) as s:
            exam = s.exec(select(ExamRecord).where(ExamRecord.accession_number == acc)).one()
            assert exam.source == "storage" and exam.started_at and exam.completed_at
            task = s.exec(select(HumanTask).where(HumanTask.accession_number == acc, HumanTask.task_type == "perform_exam")).one()
            assert task.state == "done"
