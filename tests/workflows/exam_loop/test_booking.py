"""The loop books through the slot pool (R5.3): receipt, NoSlot -> a registrar's task,
release on cancel and reschedule, and a reminder timer before arrival (R5.3.3)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from core.config import reset_settings_cache
from core.db import get_engine
from domain.booking_tables import SlotBooking
from domain.enums import Role
from domain.loop import CancelRequest, RescheduleRequest, TaskCompletion, exam_loop_workflow_id
from domain.scheduling import as_utc
from domain.booking.rules import Channel
from domain.tables import DomainEvent, ExamOrder, HumanTask, NotificationAttempt, WorklistEntry
from services import booking, loop_commands
from services.booking import PatientFacts
from services.errors import Invalid
from tests.support.loop_driver import LoopDriver, actor, closed_result
from worker import build_worker

CONTRAST_CT = {"code": "CT-ABD-C", "name": "腹部增强CT / CT abdomen contrast", "modality": "CT", "body_part": "ABDOMEN"}


def _live(acc: str) -> SlotBooking | None:
    with Session(get_engine()) as s:
        return s.exec(select(SlotBooking).where(SlotBooking.active_accession == acc)).first()


def _notices(acc: str, purpose: str) -> list[NotificationAttempt]:
    with Session(get_engine()) as s:
        return list(s.exec(select(NotificationAttempt).where(
            NotificationAttempt.accession_number == acc, NotificationAttempt.purpose == purpose)))


async def _until(fn, timeout: float = 45):
    async def poll():
        while (value := fn()) is None:
            await asyncio.sleep(0.05)
        return value
    return await asyncio.wait_for(poll(), timeout)


async def _rebooked(acc: str, old_id: str) -> SlotBooking:
    return await _until(lambda: b if (b := _live(acc)) is not None and b.id != old_id else None)


async def test_booked_slot_with_receipt_to_the_patient(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.wait_step(acc, "scheduled")
        live = _live(acc)
        assert live is not None and live.exam_code == "CT-CHEST" and live.channel == "system"
        [receipt] = await _until(lambda: _notices(acc, "receipt") or None)
        assert receipt.delivered and receipt.recipient.startswith("patient:")
        body = next(m["message"] for m in notify_sink.received if m["title"].startswith("Appointment booked"))
        assert "CT-CHEST" in body and "Arrive by" in body and "张三" not in body  # the name is masked
        with Session(get_engine()) as s:
            wl = s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one()
            assert wl.room_id == live.room_id and as_utc(wl.scheduled_start) == as_utc(live.start_at)


async def test_no_slot_opens_a_scheduling_task_until_booked(ts_env, sqlite_database, task_queue) -> None:
    """A contrast CT without an eGFR is refused; the registrar retries (still none), then
    enters the eGFR and picks a quoted segment."""
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place(procedure=CONTRAST_CT)).accession_number
        wid = exam_loop_workflow_id(acc)
        first = await d.wait_task(wid, "schedule_exam")
        with Session(get_engine()) as s:
            task = s.get(HumanTask, first)
            assert task.role == "registrar" and task.state == "open"
            assert [r["code"] for r in task.context["reasons"]] == ["egfr_missing"]
        assert _live(acc) is None and (await d.status(acc)).step == "scheduling"
        with pytest.raises(Invalid, match="segment_id is required"):
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(
                task_id=first, actor=actor(Role.registrar), data={"action": "choose"}))
        await d.complete(acc, "schedule_exam", Role.registrar, {"action": "retry"})
        second = await _until(lambda: next((t for t in _open_schedule_tasks(acc) if t != first), None))
        assert second.endswith("/schedule_exam/2")

        egfr_at = datetime.now(timezone.utc) - timedelta(days=3)
        facts = PatientFacts(egfr=75, egfr_at=egfr_at)
        refusals, quotes = await asyncio.to_thread(booking.quote_slots, acc, Channel.centre, facts, limit=60)
        assert not refusals
        pick = [q for q in quotes if not q.refusals][3]  # not the earliest: the registrar's own choice
        await d.complete(acc, "schedule_exam", Role.registrar, {
            "action": "choose", "segment_id": pick.segment_id, "egfr": 75, "egfr_at": egfr_at.isoformat()})
        await d.wait_step(acc, "scheduled")
        live = _live(acc)
        assert live is not None and live.segment_id == pick.segment_id
        assert (live.channel, live.created_by) == ("centre", "u-registrar")
        with Session(get_engine()) as s:
            kinds = [e.kind for e in s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc))]
            assert kinds.count("booking_refused") == 2 and kinds.count("appointment_booked") == 1
            states = sorted(t.state for t in s.exec(select(HumanTask).where(
                HumanTask.accession_number == acc, HumanTask.task_type == "schedule_exam")))
            assert states == ["done", "done"]
        await d.wait_task(wid, "check_in")


def _open_schedule_tasks(acc: str) -> list[str]:
    with Session(get_engine()) as s:
        return list(s.exec(select(HumanTask.id).where(HumanTask.accession_number == acc, HumanTask.state == "open",
                                                      HumanTask.task_type == "schedule_exam")))


async def test_cancel_from_the_scheduling_task(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place(procedure=CONTRAST_CT)).accession_number
        await d.wait_task(exam_loop_workflow_id(acc), "schedule_exam")
        await d.complete(acc, "schedule_exam", Role.nurse, {"action": "cancel", "reason": "contrast allergy"})
        result = await closed_result(ts_env.client, exam_loop_workflow_id(acc))
        assert result.step == "cancelled"
        with Session(get_engine()) as s:
            assert s.exec(select(SlotBooking).where(SlotBooking.accession_number == acc)).first() is None
            assert s.get(ExamOrder, acc).status == "cancelled"
            [task] = s.exec(select(HumanTask).where(HumanTask.accession_number == acc)).all()
            assert (task.task_type, task.state, task.completed_by) == ("schedule_exam", "done", "u-nurse")
        assert any("contrast allergy" in b for b in notify_sink.bodies())


async def test_reminder_fires_before_arrival_and_only_for_the_live_booking(
        ts_env, sqlite_database, task_queue, notify_sink, monkeypatch) -> None:
    """Reschedule twice: the first later booking's reminder is dropped, the second's fires
    `booking_reminder_hours` before arrival, once."""
    monkeypatch.setenv("RADLOOP_BOOKING_REMINDER_HOURS", "18")
    reset_settings_cache()
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.wait_step(acc, "scheduled")
        booked = _live(acc)
        registrar = actor(Role.registrar)
        now = await ts_env.get_current_time()
        await loop_commands.reschedule(ts_env.client, acc, RescheduleRequest(
            actor=registrar, reason="patient away", not_before=now + timedelta(days=3)))
        second = await _rebooked(acc, booked.id)
        await d.wait_step(acc, "scheduled")
        await loop_commands.reschedule(ts_env.client, acc, RescheduleRequest(
            actor=registrar, reason="patient away longer", not_before=now + timedelta(days=6)))
        third = await _rebooked(acc, second.id)
        await d.wait_step(acc, "scheduled")
        with Session(get_engine()) as s:
            assert [b.state for b in s.exec(select(SlotBooking).where(SlotBooking.accession_number == acc)
                                           .order_by(SlotBooking.created_at))] == ["cancelled", "cancelled", "booked"]

        second_due = as_utc(second.arrive_at) - timedelta(hours=18)
        await ts_env.sleep(second_due - await ts_env.get_current_time() + timedelta(hours=1))
        await asyncio.sleep(1)
        assert _notices(acc, "reminder") == []  # the superseded booking's reminder stood down

        due = as_utc(third.arrive_at) - timedelta(hours=18)
        await ts_env.sleep(due - await ts_env.get_current_time() + timedelta(minutes=30))
        [sent] = await _until(lambda: _notices(acc, "reminder") or None)
        assert sent.delivered and sent.recipient.startswith("patient:")
        assert abs(as_utc(sent.attempted_at) - due) < timedelta(minutes=1)
        assert any(m["title"].startswith("Exam reminder") for m in notify_sink.received)
    reset_settings_cache()


async def test_no_reminder_after_cancel(ts_env, sqlite_database, task_queue, notify_sink) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        await d.wait_step(acc, "scheduled")
        first = _live(acc)
        now = await ts_env.get_current_time()
        await loop_commands.reschedule(ts_env.client, acc, RescheduleRequest(
            actor=actor(Role.registrar), reason="later", not_before=now + timedelta(days=3)))
        later = await _rebooked(acc, first.id)
        await d.wait_step(acc, "scheduled")
        await loop_commands.cancel(ts_env.client, acc, CancelRequest(actor=actor(Role.clinician), reason="not needed"))
        await closed_result(ts_env.client, exam_loop_workflow_id(acc))
        await ts_env.sleep(as_utc(later.arrive_at) - await ts_env.get_current_time())
        await asyncio.sleep(1)
        assert _notices(acc, "reminder") == []
        with Session(get_engine()) as s:
            assert s.get(SlotBooking, later.id).state == "cancelled"
        assert _live(acc) is None
