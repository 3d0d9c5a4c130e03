"""The exam loop: one durable workflow per order (R4.2, R6.3, R7.1.1, R7.1.3, R7.1.4).

order QC -> appointment -> check-in -> exam -> image QC -> report (draft,
preliminary, review/sign) -> critical value (child) -> distribution ->
correction window. Human steps are tasks completed through validated updates;
device and staff actions (exam events, reschedule, cancel, correction request)
are validated updates too, so an impossible action is refused before it is
written to history. All I/O happens in activities.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.booking import SlotBooked, SlotBookingRequest, SlotRelease, book_exam_slot, release_exam_slot
    from activities.check_in import (
        SIGNATURE_INVALID,
        CheckInAsk,
        CheckInRecord,
        check_in_requirements,
        record_check_in,
    )
    from activities.critical import (
        LadderRequest,
        PlanRequest,
        SuggestRequest,
        critical_ladder,
        critical_plan,
        suggest_critical_items,
    )
    from activities.events import EventInput, record_event
    from activities.exam import ExamProgress, GradeRecord, record_exam_progress, record_image_grade
    from activities.hl7_outbound import (
        Delivery as HL7Delivery,
        OrderStatusMessage,
        ReportMessage,
        deliver_hl7,
        queue_order_status,
        queue_report_message,
    )
    from activities.loop_steps import StepAdvance, advance_loop_step
    from activities.notifications import Notice, send_notification
    from activities.orders import OrderFix, OrderRef, StepChange, apply_order_fix, run_order_qc, set_order_step
    from activities.order_changes import OrderChangeWrite, apply_order_change
    from activities.reports import (
        PublishRequest,
        ReportDraft,
        SignRequest,
        publish_report,
        save_report_version,
        sign_report,
    )
    from activities.scheduling import (
        AccessionAt,
        Booking,
        BookingRequest,
        EnqueueRequest,
        WorklistRequest,
        book_earliest_slot,
        enqueue_patient,
        first_room_for,
        release_slot,
        set_queue_state,
        set_worklist_status,
        withdraw_worklist_entries,
        write_worklist_entry,
    )
    from activities.tasks import CancelTasks, cancel_open_tasks
    from domain.booking.rules import Channel
    from domain.enums import ImageGrade, LoopStep, Priority, Role, TaskType
    from domain.loop import (
        EXAM_LOOP_WORKFLOW,
        ActionAck,
        Actor,
        CancelRequest,
        CorrectionRequest,
        CriticalRaise,
        CriticalValueInput,
        ExamEvent,
        ExamLoopInput,
        ImagesReceived,
        LoopStatus,
        RescheduleRequest,
        TaskCompletion,
        TaskOutcome,
        critical_value_workflow_id,
    )
    from domain.order_changes import SENT_TO_REVIEW, OrderChange, PatientMerged
    from domain.scheduling import as_utc
    from domain.search_attributes import SA_CRITICAL, SA_PATIENT, SA_STEP
    from domain.task_forms import PerformExamForm
    from services.booking import PatientFacts
    from workflows.critical_value.workflow import CriticalValueWorkflow
    from workflows.db_writes import LOCAL_DB_WRITES, run_db
    from workflows.human_tasks import TaskBook
    from workflows.options import HL7_DELIVERY_ACTIVITY, NOTIFY_ACTIVITY

BOOKING_SLOT_POOL = "booking-slot-pool"
CHECK_IN_CONSENT = "check-in-consent"
CHECK_IN_SIGNATURE_IMAGE = "check-in-signature-image"
BEFORE_EXAM = {LoopStep.order_qc, LoopStep.order_fix, LoopStep.scheduling, LoopStep.scheduled, LoopStep.arrived}
SYSTEM = "system"


class _Cancelled(Exception):
    """Raised inside the loop when an accepted cancel must unwind to the saga."""


class _Signed:
    """What signing produced: the version and whether it carries a critical finding."""

    def __init__(self, version: int, critical: bool, finding: str | None, signer: Actor,
                 item_code: str | None = None) -> None:
        self.version, self.critical, self.finding, self.signer = version, critical, finding, signer
        self.item_code = item_code


@workflow.defn(name=EXAM_LOOP_WORKFLOW)
class ExamLoopWorkflow:
    @workflow.init
    def __init__(self, inp: ExamLoopInput) -> None:
        self.inp = inp
        self.wid = workflow.info().workflow_id
        self.step = LoopStep.order_qc
        self.tasks = TaskBook(self.wid, inp.accession_number, Priority(inp.priority).rank)
        self.seq = 0
        self.cancel_req: CancelRequest | None = None
        self.reschedule_req: RescheduleRequest | None = None
        self.booking: Booking | None = None
        self.slot: SlotBooked | None = None  # the slot-pool booking (loops after booking-slot-pool)
        self.booking_gen = 0  # bumped per slot-pool booking: a reminder for an older one stands down
        self.facts = PatientFacts()  # what the registrar told booking (eGFR, MR screening, patient type)
        self.check_in_needs: list[str] = []  # consents/notices check-in requires (check-in-consent)
        self.check_in_signature = False  # an electronic signature names its uploaded image (check-in-signature-image)
        self.compensations: list[str] = []
        self.exam_attempt = 1
        self.exam_state = "not_started"  # not_started | started | completed
        self.exam_done_by_event = False
        self.last_grade: ImageGrade | None = None
        self.images: ImagesReceived | None = None
        self.report_version = 0
        self.valid_version: int | None = None
        self.preliminary_author: str | None = None
        self.critical_ids: list[str] = []
        self.last_critical: str | None = None
        self.raised_findings: set[str] = set()
        self.report_text = ""
        self.children: list[Any] = []
        self.corrections: list[CorrectionRequest] = []
        self.correction_active = False
        self.hl7_enabled = False
        self.hl7_outbox: list[str] = []  # message IDs, delivered strictly in order
        self.hl7_seq = 0
        self.hl7_sender: asyncio.Task | None = None
        self.correction_count = 0
        self.merges: list[str] = []  # merge IDs this loop followed (patient_merged is idempotent)
        self.side_tasks: set[str] = set()  # tasks beside the main path (order change after the exam)

    # ==== the loop ====================================================================
    @workflow.run
    async def run(self, inp: ExamLoopInput) -> LoopStatus:
        if workflow.patched("hl7-outbound"):
            # The HIS hears of every status change and signed report (ORU^R01), in order,
            # through a durable outbox: a HIS outage never blocks the loop's own steps.
            self.hl7_enabled = True
            self.hl7_sender = asyncio.create_task(self._deliver_hl7_forever())
        try:
            if not (await self._order_qc() and await self._schedule_and_check_in()):
                raise _Cancelled()
            await self._exam_until_quality_ok()
        except _Cancelled:
            await self._cancel_saga()
            await self._drain_hl7()
            return self.status()
        signed = await self._report_until_signed(correction=None)
        await self._after_signing(signed, corrected=False, previous_critical=None)
        await self._correction_window()
        for child in self.children:
            await child
        await workflow.wait_condition(lambda: not self.side_tasks)  # no command when none is open
        await self._advance(LoopStep.closed, status="closed", summary="loop closed")
        await self._drain_hl7()
        return self.status()

    # ---- 1. order QC (R8.1) ------------------------------------------------------------
    async def _order_qc(self) -> bool:
        while True:
            result = await run_db(run_order_qc, OrderRef(accession_number=self.inp.accession_number))
            if result.passed:
                await self._advance(LoopStep.scheduling, status="accepted", summary="order QC passed")
                return True
            issues = [i.model_dump() for i in result.issues]
            task = await self.tasks.open_task(TaskType.order_fix, context={"issues": issues})
            await self._advance(LoopStep.order_fix, status="qc_failed",
                                summary="order QC failed: " + "; ".join(i.message for i in result.issues))
            await self._tell_orderer("Order needs correction",
                                     "Order QC found: " + "; ".join(i.message for i in result.issues))
            await workflow.wait_condition(lambda: task in self.tasks.done or self.cancel_req is not None)
            if self.cancel_req is not None:
                return False
            await self.tasks.close(task)
            form = self.tasks.form(task)
            if form.action == "cancel":
                self.cancel_req = CancelRequest(actor=self.tasks.actor(task), reason=form.comment or "withdrawn by the ordering side")
                return False
            fields = {k: v for k, v in form.model_dump(exclude={"action", "comment"}).items() if v is not None}
            await run_db(
                apply_order_fix,
                OrderFix(key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(),
                         actor=self.tasks.actor(task).user_id, fields=fields)
            )

    # ---- 2-3. appointment and check-in (R5.3, R6.1.5, R6.3) ------------------------------
    async def _book(self, not_before) -> bool:
        req = BookingRequest(key=self._key(), accession_number=self.inp.accession_number,
                             modality=self.inp.modality, not_before=not_before)
        pool = False
        if self.inp.priority == Priority.stat:
            self.booking = await run_db(first_room_for, req)
        elif workflow.patched(BOOKING_SLOT_POOL):
            # The hospital-wide slot pool with its rules (R5.3); a refusal goes to a person.
            pool = True
            if not await self._book_from_pool(not_before):
                return False
        else:
            self.booking = await run_db(book_earliest_slot, req)
            self._push_compensation("release_slot")
        await run_db(
            write_worklist_entry,
            WorklistRequest(key=self._key(), accession_number=self.inp.accession_number, attempt=self.exam_attempt,
                            room_id=self.booking.room_id, scheduled_start=self.booking.start_at, at=workflow.now())
        )
        self._push_compensation("withdraw_worklist")
        when = "now (stat)" if self.inp.priority == Priority.stat else self.booking.start_at.isoformat()
        await self._advance(LoopStep.scheduled, status="scheduled", summary=f"{self.booking.room_name} at {when}")
        if pool and self.slot is not None:
            # Receipt now, reminder before arrival (R5.3.3, R5.3.5).
            await self._tell("patient", self.inp.patient_id, "Appointment booked", self.slot.receipt, purpose="receipt")
            if self.slot.remind_at is not None and self.slot.remind_at > workflow.now():
                asyncio.create_task(self._remind(self.slot, self.booking_gen))
        return True

    async def _book_from_pool(self, not_before) -> bool:
        """Book the earliest feasible slot; on NoSlot a registrar supplies what was missing, picks
        a time or cancels (False: the loop is being cancelled)."""
        ask = SlotBookingRequest(key=self._key(), accession_number=self.inp.accession_number,
                                 not_before=not_before, facts=self.facts)
        while True:
            try:
                self.slot = await run_db(book_exam_slot, ask)
                break
            except (ActivityError, ApplicationError) as err:
                # A local activity fails with the ApplicationError itself, an ordinary one wraps it.
                cause = err.cause if isinstance(err, ActivityError) else err
                if not isinstance(cause, ApplicationError) or cause.type != "NoSlot":
                    raise
                reasons = list(cause.details[0]) if cause.details else []
                await self._event("booking_refused", f"no slot: {cause.message}", SYSTEM)
                task = await self.tasks.open_task(TaskType.schedule_exam, context={
                    "reason": cause.message, "reasons": reasons, "not_before": as_utc(not_before).isoformat()})
                await workflow.wait_condition(lambda: task in self.tasks.done or self.cancel_req is not None)
                if self.cancel_req is not None:
                    return False
                await self.tasks.close(task)
                form, who = self.tasks.form(task), self.tasks.actor(task)
                if form.action == "cancel":
                    self.cancel_req = CancelRequest(actor=who, reason=form.reason)
                    return False
                if form.not_before is not None:
                    not_before = max(workflow.now(), as_utc(form.not_before))
                known = self.facts  # a field left empty keeps what an earlier task said
                self.facts = PatientFacts(
                    patient_type=form.patient_type,
                    egfr=form.egfr if form.egfr is not None else known.egfr,
                    egfr_at=form.egfr_at if form.egfr is not None else known.egfr_at,
                    mr_screening=form.mr_screening if form.mr_screening != "not_done" else known.mr_screening)
                ask = SlotBookingRequest(
                    key=self._key(), accession_number=self.inp.accession_number, not_before=not_before,
                    facts=self.facts, actor=who.user_id,
                    channel=Channel.nurse_station if who.role == Role.nurse else Channel.centre,
                    segment_id=form.segment_id if form.action == "choose" else None)
        s = self.slot
        self.booking = Booking(room_id=s.room_id, room_name=s.room_name, start_at=s.start_at, end_at=s.end_at,
                               station_ae_title=s.station_ae_title)
        self.booking_gen += 1
        self._push_compensation("release_exam_slot")
        return True

    async def _remind(self, slot: SlotBooked, gen: int) -> None:
        """Durable timer: remind the patient before arrival, unless the booking was changed or
        cancelled or the patient has already checked in."""
        assert slot.remind_at is not None
        try:
            await workflow.wait_condition(
                lambda: gen != self.booking_gen or self.cancel_req is not None or self.reschedule_req is not None
                or self.step not in (LoopStep.scheduling, LoopStep.scheduled),
                timeout=slot.remind_at - workflow.now())
        except asyncio.TimeoutError:
            await self._tell("patient", self.inp.patient_id, "Exam reminder",
                             "Reminder: your exam is coming up.\n\n" + slot.receipt, purpose="reminder")

    async def _schedule_and_check_in(self) -> bool:
        if self.cancel_req is not None:
            return False
        if not await self._book(workflow.now()):
            return False
        extra: dict[str, Any] = {}
        consent_check = workflow.patched(CHECK_IN_CONSENT)
        if consent_check:
            # A handwritten signature is uploaded first and named by reference + hash; the activity
            # checks the stored image before recording the consent (R6.1.4).
            self.check_in_signature = workflow.patched(CHECK_IN_SIGNATURE_IMAGE)
            # What the patient must sign before passing check-in (R6.1.4); the validator enforces it.
            needs = await run_db(check_in_requirements, CheckInAsk(accession_number=self.inp.accession_number,
                                                                   at=workflow.now()))
            self.check_in_needs = needs.needs
            extra = {"required": needs.needs, "same_name_patients": needs.same_name_patients}
        while True:
            assert self.booking is not None
            due = None if self.inp.priority == Priority.stat else max(
                self.booking.start_at - workflow.now() + timedelta(minutes=30), timedelta(minutes=30))
            task = await self.tasks.open_task(
                TaskType.check_in, due=due,
                context={"room": self.booking.room_name, "scheduled_start": self.booking.start_at.isoformat(), **extra},
            )
            await workflow.wait_condition(
                lambda: task in self.tasks.done or self.cancel_req is not None or self.reschedule_req is not None)
            if self.cancel_req is not None:
                return False
            if self.reschedule_req is not None and task not in self.tasks.done:
                req, self.reschedule_req = self.reschedule_req, None
                await self.tasks.close(task, state="cancelled")
                await self._run_compensations(f"rescheduled: {req.reason}", req.actor.user_id)
                not_before = max(workflow.now(), req.not_before) if req.not_before else workflow.now()
                if not await self._book(not_before):
                    return False
                await self._tell_orderer("Exam rescheduled", f"New time: {self.booking.start_at.isoformat()} ({req.reason})")
                continue
            self.reschedule_req = None
            await self.tasks.close(task)
            if consent_check:
                form = self.tasks.form(task)
                try:
                    await run_db(record_check_in, CheckInRecord(
                        key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(),
                        actor=self.tasks.actor(task).user_id, identity_document_type=form.identity_document_type,
                        signed=list(form.signed), consent_method=form.consent_method,
                        signature_sha256=form.signature_sha256, signature_ref=form.signature_ref, witness=form.witness,
                        verify_signature=self.check_in_signature))
                except (ActivityError, ApplicationError) as err:
                    # The stored signature did not verify: never record it; check-in opens again with the reason.
                    cause = err.cause if isinstance(err, ActivityError) else err
                    if not (self.check_in_signature and isinstance(cause, ApplicationError)
                            and cause.type == SIGNATURE_INVALID):
                        raise
                    extra = {**extra, "signature_refused": cause.message}
                    await self._event("check_in_signature_refused", f"signature not recorded: {cause.message}",
                                      self.tasks.actor(task).user_id)
                    continue
            await run_db(
                enqueue_patient,
                EnqueueRequest(key=self._key(), accession_number=self.inp.accession_number, room_id=self.booking.room_id,
                               priority=self.inp.priority, at=workflow.now(), actor=self.tasks.actor(task).user_id)
            )
            self._push_compensation("leave_queue")
            await self._advance(LoopStep.arrived, status="arrived", summary="patient checked in",
                                actor=self.tasks.actor(task).user_id)
            return True

    # ---- 4-5. exam and image QC (R6.3, R8.2) ---------------------------------------------
    async def _exam_until_quality_ok(self) -> None:
        reason: str | None = None
        while True:
            self.exam_state = "not_started"
            task = await self.tasks.open_task(
                TaskType.perform_exam, context={"attempt": self.exam_attempt, "re_exam_reason": reason,
                                                "room": self.booking.room_name if self.booking else None})
            await workflow.wait_condition(
                lambda: self.exam_done_by_event or task in self.tasks.done
                or (self.cancel_req is not None and self.exam_state == "not_started"))
            if self.cancel_req is not None and self.exam_state == "not_started":
                raise _Cancelled()
            if task in self.tasks.done and not self.exam_done_by_event:
                form: PerformExamForm = self.tasks.form(task)
                await self._record_exam(ExamEvent(
                    kind="completed", actor=self.tasks.actor(task), method=form.method, contrast_used=form.contrast_used,
                    contrast_agent=form.contrast_agent, contrast_volume_ml=form.contrast_volume_ml))
                self.exam_state = "completed"
                await self.tasks.close(task)
            else:
                await self.tasks.close(task, state="done")
            self.exam_done_by_event = False
            await self._set_worklist("completed")
            await run_db(set_queue_state, AccessionAt(key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(), reason="done"))
            self.compensations = [c for c in self.compensations if c != "leave_queue"]

            await self._advance(LoopStep.image_qc, status="exam_completed", summary=f"exam completed (attempt {self.exam_attempt})")
            qc = await self.tasks.open_task(TaskType.image_qc, context={"attempt": self.exam_attempt})
            done = await self.tasks.wait(qc)
            await self.tasks.close(qc)
            grade = self.tasks.form(qc)
            self.last_grade = grade.grade
            await run_db(
                record_image_grade,
                GradeRecord(key=self._key(), accession_number=self.inp.accession_number, attempt=self.exam_attempt,
                            grade=grade.grade.value, reason=grade.reason, actor=done.actor.user_id, at=workflow.now())
            )
            if grade.grade != ImageGrade.D:
                return
            # Not diagnosable: the patient is re-examined (R8.2).
            reason = grade.reason
            self.exam_attempt += 1
            assert self.booking is not None
            await run_db(
                write_worklist_entry,
                WorklistRequest(key=self._key(), accession_number=self.inp.accession_number, attempt=self.exam_attempt,
                                room_id=self.booking.room_id, scheduled_start=workflow.now(), at=workflow.now())
            )
            await self._advance(LoopStep.arrived, status="re_exam", summary=f"re-exam required: {reason}")

    async def _record_exam(self, ev: ExamEvent) -> None:
        await run_db(
            record_exam_progress,
            ExamProgress(key=self._key(), accession_number=self.inp.accession_number, attempt=self.exam_attempt,
                         kind=ev.kind, at=workflow.now(), actor=ev.actor.user_id, source=ev.source, method=ev.method,
                         contrast_used=ev.contrast_used, contrast_agent=ev.contrast_agent,
                         contrast_volume_ml=ev.contrast_volume_ml, reason=ev.reason, station_ae=ev.station_ae,
                         performed_at=ev.performed_at, performed_series=ev.performed_series)
        )

    async def _set_worklist(self, status: str) -> None:
        await run_db(
            set_worklist_status,
            AccessionAt(key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(), reason=status)
        )

    # ---- 6. report tiers (R7.1.1, R7.1.2, R4.2.6) ------------------------------------------
    async def _save(self, tier: str, form: Any, actor: Actor, **extra: Any) -> int:
        self.report_version += 1
        await run_db(
            save_report_version,
            ReportDraft(accession_number=self.inp.accession_number, version=self.report_version, tier=tier,
                        findings=form.findings, impression=form.impression, recommendation=form.recommendation,
                        author_id=actor.user_id, author_role=actor.role.value, at=workflow.now(), **extra)
        )
        return self.report_version

    async def _report_until_signed(self, correction: CorrectionRequest | None) -> _Signed:
        if correction is None:
            await self._advance(LoopStep.reporting, status="reporting", summary="awaiting report draft")
            draft = await self.tasks.open_task(TaskType.report_draft)
            done = await self.tasks.wait(draft)
            await self.tasks.close(draft)
            form = self.tasks.form(draft)
            await self._save("draft", form, done.actor, source=form.source)
        comment: str | None = None
        while True:
            if correction is None:
                prelim = await self.tasks.open_task(TaskType.report_preliminary, context={"base_version": self.report_version, "return_comment": comment})
                await self._advance(LoopStep.preliminary, summary="awaiting preliminary report")
                done = await self.tasks.wait(prelim)
                await self.tasks.close(prelim)
                prelim_form = self.tasks.form(prelim)
                await self._save("preliminary", prelim_form, done.actor)
                self.report_text = f"{prelim_form.findings}\n{prelim_form.impression}"
                self.preliminary_author = done.actor.user_id
            else:
                amend = await self.tasks.open_task(TaskType.correction_amend, context={"base_version": self.valid_version, "reason": correction.reason, "return_comment": comment})
                await self._advance(LoopStep.correction, summary="amending the signed report")
                done = await self.tasks.wait(amend)
                await self.tasks.close(amend)
                amend_form = self.tasks.form(amend)
                await self._save("amended", amend_form, done.actor, critical=amend_form.critical,
                                 critical_finding=amend_form.critical_finding, comment=f"{amend_form.kind} correction")
                self.report_text = f"{amend_form.findings}\n{amend_form.impression}"
                self.preliminary_author = done.actor.user_id
            context: dict[str, Any] = {"version": self.report_version, "correction": correction is not None}
            if workflow.patched("critical-suggestions"):
                # Text rules suggest critical items to the reviewer; a human confirms (R8.7.2).
                suggestions = await run_db(
                    suggest_critical_items, SuggestRequest(text=self.report_text, modality=self.inp.modality))
                context["critical_suggestions"] = [x.model_dump() for x in suggestions]
            review = await self.tasks.open_task(TaskType.report_review, context=context)
            await self._advance(LoopStep.review, summary="awaiting review and signature")
            done = await self.tasks.wait(review)
            await self.tasks.close(review)
            form = self.tasks.form(review)
            tier = "amended" if correction is not None else "final"
            version = await self._save(tier, form, done.actor, critical=form.critical,
                                       critical_finding=form.critical_finding, comment=form.comment or None)
            if form.action == "return":
                comment = form.comment
                continue
            await run_db(
                sign_report,
                SignRequest(accession_number=self.inp.accession_number, version=version, signer_id=done.actor.user_id,
                            at=workflow.now(), recall_reason=correction.reason if correction else None)
            )
            self.valid_version = version
            return _Signed(version, form.critical, form.critical_finding, done.actor,
                           item_code=getattr(form, "critical_item_code", None))

    # ---- 7-8. critical value and distribution ------------------------------------------------
    async def _after_signing(self, signed: _Signed, corrected: bool, previous_critical: str | None) -> None:
        await self._advance(LoopStep.signed, status="signed", summary=f"report v{signed.version} signed",
                            actor=signed.signer.user_id)
        if (signed.critical and signed.finding and signed.finding != previous_critical
                and signed.finding not in self.raised_findings):
            await self._raise_critical(signed)
        self.last_critical = signed.finding if signed.critical else None
        await run_db(
            publish_report,
            PublishRequest(accession_number=self.inp.accession_number, version=signed.version,
                           kind="corrected" if corrected else "final", at=workflow.now())
        )
        if self.hl7_enabled:
            self.hl7_outbox.append(await run_db(
                queue_report_message,
                ReportMessage(accession_number=self.inp.accession_number, version=signed.version,
                              kind="corrected" if corrected else "final")))
        await self._advance(LoopStep.published, status="corrected" if corrected else "reported",
                            summary=f"report v{signed.version} published")
        if corrected:
            await self._tell_orderer("Report corrected", f"Report v{signed.version} replaces the recalled version.")
            await self._tell("patient", self.inp.patient_id, "Your report was corrected",
                             "The imaging report was corrected; the previous version is withdrawn.")

    async def _raise_critical(self, signed: _Signed) -> None:
        await self._start_critical(signed.finding or "", signed.item_code, signed.signer)

    async def _start_critical(self, finding: str, item_code: str | None, raised_by: Actor) -> str:
        """Start the critical-value child; a junior's finding is verified by a senior first."""
        cv_id = critical_value_workflow_id(self.inp.accession_number, len(self.critical_ids) + 1)
        self.critical_ids.append(cv_id)
        self.raised_findings.add(finding)
        workflow.upsert_search_attributes([SA_CRITICAL.value_set(True)])
        base = dict(critical_value_id=cv_id, accession_number=self.inp.accession_number, finding=finding,
                    raised_by=raised_by, ordering_clinician_id=self.inp.ordering_clinician_id,
                    ordering_department=self.inp.ordering_department)
        if workflow.patched("critical-dictionary"):
            plan = await run_db(
                critical_plan, PlanRequest(accession_number=self.inp.accession_number, finding=finding,
                                           item_code=item_code, modality=self.inp.modality))
            child_input = CriticalValueInput(
                **base, ladder=plan.ladder, item_code=plan.item_code, item_name=plan.item_name,
                dictionary_version=plan.dictionary_version, deadline_seconds=plan.deadline_seconds,
                response_seconds=plan.response_seconds,
                needs_verification=raised_by.role != Role.senior_radiologist)
        else:
            ladder = await run_db(
                critical_ladder, LadderRequest(accession_number=self.inp.accession_number, finding=finding))
            child_input = CriticalValueInput(**base, ladder=ladder)
        handle = await workflow.start_child_workflow(CriticalValueWorkflow.run, child_input, id=cv_id)
        self.children.append(handle)
        return cv_id

    # ---- 9. corrections (R7.1.4) ---------------------------------------------------------
    async def _correction_window(self) -> None:
        deadline = workflow.now() + timedelta(days=self.inp.correction_window_days)
        while True:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return
            try:
                await workflow.wait_condition(lambda: bool(self.corrections), timeout=remaining)
            except asyncio.TimeoutError:
                return
            req = self.corrections.pop(0)
            self.correction_count += 1
            await self._advance(LoopStep.correction, summary=f"correction requested: {req.reason}", actor=req.actor.user_id)
            review = await self.tasks.open_task(
                TaskType.correction_review, context={"reason": req.reason, "requested_by": req.actor.user_id,
                                                     "version": self.valid_version})
            done = await self.tasks.wait(review)
            await self.tasks.close(review)
            decision = self.tasks.form(review)
            if decision.decision == "reject":
                await self._event("correction_rejected", f"correction rejected: {decision.reason}", done.actor.user_id)
                await self._tell("user", req.actor.user_id, "Correction request rejected", decision.reason)
                await self._advance(LoopStep.published, summary="correction rejected; signed report stands")
                self.correction_active = False
                continue
            await self._event("correction_accepted", f"correction accepted: {decision.reason}", done.actor.user_id)
            previous_critical = self.last_critical
            signed = await self._report_until_signed(correction=req)
            await self._after_signing(signed, corrected=True, previous_critical=previous_critical)
            self.correction_active = False

    # ==== handlers =======================================================================
    @workflow.update
    def complete_task(self, c: TaskCompletion) -> TaskOutcome:
        self.tasks.accept(c)
        return TaskOutcome(task_id=c.task_id, next_step=self.step)

    @complete_task.validator
    def _validate_task(self, c: TaskCompletion) -> None:
        self.tasks.validate(c)
        task_type = self.tasks.open[c.task_id]
        if task_type == TaskType.report_review and c.actor.user_id == self.preliminary_author:
            raise ApplicationError("the author of the preliminary report cannot review and sign it", type="Forbidden")
        if task_type == TaskType.perform_exam and self.exam_state == "completed":
            raise ApplicationError("the exam is already completed", type="Conflict")
        if task_type == TaskType.check_in and self.check_in_needs:
            missing = [n for n in self.check_in_needs if n not in c.data.get("signed", [])]
            if missing:
                raise ApplicationError(f"check-in needs signed first: {', '.join(missing)}", type="Invalid")
        if task_type == TaskType.check_in and self.check_in_signature and c.data.get("signed") \
                and c.data.get("consent_method", "electronic") == "electronic" and not c.data.get("signature_ref"):
            raise ApplicationError("an electronic signature needs signature_ref: upload the signature image first "
                                   "(POST /api/v1/consent-signatures)", type="Invalid")

    @workflow.update
    async def record_exam_event(self, ev: ExamEvent) -> ActionAck:
        if ev.kind == "started":
            self.exam_state = "started"
            await self._record_exam(ev)
            await self._set_worklist("in_progress")
            await run_db(set_queue_state, AccessionAt(key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(), reason="called"))
            await self._advance(LoopStep.in_exam, status="in_progress", summary="exam started", actor=ev.actor.user_id)
        elif ev.kind == "completed":
            self.exam_state = "completed"
            await self._record_exam(ev)
            self.exam_done_by_event = True
        else:
            self.exam_state = "not_started"
            await self._record_exam(ev)
            self.exam_attempt += 1
            await self._advance(LoopStep.arrived, status="arrived", summary=f"exam discontinued: {ev.reason or 'no reason'}")
        return ActionAck(step=self.step, detail=f"exam {ev.kind}")

    @workflow.update
    async def images_received(self, info: ImagesReceived) -> ActionAck:
        """The modality sent the exam's images (R4.3.2): this completes the exam if nothing else did."""
        self.images = info
        if self.exam_state == "completed":
            await self._event("images_received", f"images received: {info.num_instances} in {info.num_series} series",
                              info.actor.user_id)
            return ActionAck(step=self.step, detail="images recorded")
        started = self.exam_state == "started"
        self.exam_state = "completed"
        if not started:
            await self._record_exam(ExamEvent(kind="started", actor=info.actor, source="storage"))
        await self._record_exam(ExamEvent(kind="completed", actor=info.actor, source="storage",
                                          method=info.method, reason=f"images received ({info.how})"))
        self.exam_done_by_event = True
        return ActionAck(step=self.step, detail="exam completed by images received")

    @images_received.validator
    def _validate_images_received(self, info: ImagesReceived) -> None:
        if self.step in BEFORE_EXAM and self.step != LoopStep.arrived:
            raise ApplicationError(f"images for an order at step {self.step.value}: patient not checked in", type="Conflict")
        if self.step in (LoopStep.closed, LoopStep.cancelled):
            raise ApplicationError(f"the loop is {self.step.value}", type="Conflict")
        if self.images is not None and self.images.study_instance_uid == info.study_instance_uid \
                and self.images.num_instances == info.num_instances:
            raise ApplicationError("these images were already reported", type="Conflict")

    @record_exam_event.validator
    def _validate_exam_event(self, ev: ExamEvent) -> None:
        if ev.actor.role != Role.technologist:
            raise ApplicationError("only a technologist (or the modality) reports exam progress", type="Forbidden")
        if ev.kind == "started":
            if self.step != LoopStep.arrived or self.exam_state != "not_started":
                raise ApplicationError(f"cannot start the exam at step {self.step.value}", type="Conflict")
        elif self.exam_state != "started":
            raise ApplicationError(f"cannot mark the exam {ev.kind}: it has not started", type="Conflict")

    @workflow.update
    async def raise_critical(self, req: CriticalRaise) -> ActionAck:
        cv_id = await self._start_critical(req.finding, req.item_code, req.actor)
        return ActionAck(step=self.step, detail=cv_id)

    @raise_critical.validator
    def _validate_raise_critical(self, req: CriticalRaise) -> None:
        if req.actor.role not in (Role.technologist, Role.resident, Role.radiologist, Role.senior_radiologist):
            raise ApplicationError("critical values are raised by the exam department's staff", type="Forbidden")
        if self.exam_state == "not_started" and self.step in BEFORE_EXAM:
            raise ApplicationError("no exam has started for this order", type="Conflict")
        if self.step in (LoopStep.closed, LoopStep.cancelled):
            raise ApplicationError(f"the loop is {self.step.value}", type="Conflict")
        if req.finding in self.raised_findings:
            raise ApplicationError("this critical finding is already being handled", type="Conflict")

    @workflow.update
    def reschedule(self, req: RescheduleRequest) -> ActionAck:
        self.reschedule_req = req
        return ActionAck(step=self.step, detail="reschedule accepted")

    @reschedule.validator
    def _validate_reschedule(self, req: RescheduleRequest) -> None:
        if req.actor.role not in (Role.registrar, Role.nurse):
            raise ApplicationError("only registrars and nurses reschedule", type="Forbidden")
        if self.step != LoopStep.scheduled or self.inp.priority == Priority.stat:
            raise ApplicationError(f"cannot reschedule at step {self.step.value}", type="Conflict")
        if self.reschedule_req is not None or self.cancel_req is not None:
            raise ApplicationError("a reschedule or cancel is already in progress", type="Conflict")

    @workflow.update
    def cancel(self, req: CancelRequest) -> ActionAck:
        self.cancel_req = req
        return ActionAck(step=self.step, detail="cancel accepted")

    @cancel.validator
    def _validate_cancel(self, req: CancelRequest) -> None:
        if req.actor.role not in (Role.registrar, Role.nurse, Role.clinician):
            raise ApplicationError("only registrars, nurses and the ordering side cancel", type="Forbidden")
        if self.step not in BEFORE_EXAM or self.exam_state != "not_started":
            raise ApplicationError(f"cannot cancel once the exam has started (step {self.step.value})", type="Conflict")
        if self.cancel_req is not None:
            raise ApplicationError("the order is already being cancelled", type="Conflict")

    @workflow.update
    def request_correction(self, req: CorrectionRequest) -> ActionAck:
        self.correction_active = True
        self.corrections.append(req)
        return ActionAck(step=self.step, detail="correction requested")

    @request_correction.validator
    def _validate_correction(self, req: CorrectionRequest) -> None:
        if req.actor.role not in (Role.clinician, Role.radiologist, Role.senior_radiologist):
            raise ApplicationError("only clinicians and radiologists request corrections", type="Forbidden")
        if self.valid_version is None or self.step in (LoopStep.closed, LoopStep.cancelled):
            raise ApplicationError("there is no signed report to correct", type="Conflict")
        if self.correction_active:
            raise ApplicationError("a correction is already in progress", type="Conflict")

    @workflow.update
    async def change_order(self, change: OrderChange) -> ActionAck:
        """ORC-1 XO before the exam: the order row (and scheduled worklist steps) take the new values;
        after it started, what was done cannot be rewritten: a person decides (a task)."""
        if self.step not in BEFORE_EXAM or self.exam_state != "not_started":
            task = await self.tasks.open_task(TaskType.order_change_review, context={
                "changes": change.changes, "source": change.source, "reason": change.reason,
                "requested_by": change.actor.user_id, "step": self.step.value})
            await self._event("order_change_requested",
                              f"order change after the exam started ({', '.join(sorted(change.changes))}): {task}",
                              change.actor.user_id)
            self.side_tasks.add(task)
            asyncio.create_task(self._close_side_task(task, "order_change_reviewed"))
            return ActionAck(step=self.step, detail=f"{SENT_TO_REVIEW} ({task})")
        changed = await run_db(apply_order_change, OrderChangeWrite(
            key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(), change=change))
        follow = {k: v for k, v in change.changes.items()
                  if k in ("ordering_clinician_id", "ordering_department") and k in changed and v}
        if follow:
            self.inp = self.inp.model_copy(update=follow)
        return ActionAck(step=self.step, detail="order changed: " + (", ".join(changed) or "nothing"))

    @change_order.validator
    def _validate_change_order(self, change: OrderChange) -> None:
        if change.actor.role not in (Role.clinician, Role.registrar):
            raise ApplicationError("only the ordering side and registrars change an order", type="Forbidden")
        if self.step in (LoopStep.closed, LoopStep.cancelled):
            raise ApplicationError(f"the loop is {self.step.value}: the order cannot change", type="Conflict")
        if self.cancel_req is not None:
            raise ApplicationError("the order is being cancelled", type="Conflict")

    @workflow.update
    def patient_merged(self, merged: PatientMerged) -> ActionAck:
        """A40 or a registrar's merge (or its undoing): the loop follows the surviving patient ID."""
        if merged.merge_id + ("/undone" if merged.undone else "") not in self.merges:
            self.merges.append(merged.merge_id + ("/undone" if merged.undone else ""))
            self.inp = self.inp.model_copy(update={"patient_id": merged.to_patient_id})
            workflow.upsert_search_attributes([SA_PATIENT.value_set(merged.to_patient_id)])
        return ActionAck(step=self.step, detail=f"patient is {self.inp.patient_id}")

    @patient_merged.validator
    def _validate_patient_merged(self, merged: PatientMerged) -> None:
        if self.inp.patient_id not in (merged.from_patient_id, merged.to_patient_id):
            raise ApplicationError(f"this loop's patient is {self.inp.patient_id}, not {merged.from_patient_id}",
                                   type="Conflict")

    @workflow.query
    def status(self) -> LoopStatus:
        return LoopStatus(
            accession_number=self.inp.accession_number, step=self.step, open_tasks=self.tasks.views(),
            exam_attempt=self.exam_attempt, last_grade=self.last_grade, report_version=self.report_version,
            valid_report_version=self.valid_version, critical_value_ids=list(self.critical_ids),
            cancelled=self.step == LoopStep.cancelled, correction_count=self.correction_count,
        )

    # ==== helpers ========================================================================
    def _key(self) -> str:
        self.seq += 1
        return f"{self.wid}/e{self.seq}"

    async def _advance(self, step: LoopStep, status: str | None = None, summary: str = "", actor: str = SYSTEM) -> None:
        # The row first, then the state: whoever sees the new step can read its row.
        change = StepChange(key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(),
                            step=step.value, status=status, actor=actor, summary=summary)
        if workflow.patched(LOCAL_DB_WRITES):
            hl7_seq = None
            if status and self.hl7_enabled:
                self.hl7_seq += 1
                hl7_seq = self.hl7_seq
            message_id = await run_db(advance_loop_step, StepAdvance(change=change, hl7_status_seq=hl7_seq))
            self.step = step
            workflow.upsert_search_attributes([SA_STEP.value_set(step.value)])
            if message_id:
                self.hl7_outbox.append(message_id)
            return
        await run_db(set_order_step, change)
        self.step = step
        workflow.upsert_search_attributes([SA_STEP.value_set(step.value)])
        if status and self.hl7_enabled:
            self.hl7_seq += 1
            self.hl7_outbox.append(await run_db(
                queue_order_status,
                OrderStatusMessage(accession_number=self.inp.accession_number, status=status, seq=self.hl7_seq)))

    async def _event(self, kind: str, summary: str, actor: str) -> None:
        await run_db(
            record_event,
            EventInput(key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(),
                       actor=actor, kind=kind, summary=summary)
        )

    async def _tell(self, kind: str, rid: str, title: str, body: str, purpose: str = "info") -> bool:
        """Informational notice; a failed delivery is recorded, never blocks the loop."""
        try:
            await workflow.execute_activity(
                send_notification,
                Notice(key=self._key(), accession_number=self.inp.accession_number, recipient_kind=kind,
                       recipient_id=rid, title=f"{title} ({self.inp.accession_number})", body=body, at=workflow.now(),
                       purpose=purpose),
                **NOTIFY_ACTIVITY,
            )
            return True
        except ActivityError:
            return False

    async def _close_side_task(self, task: str, kind: str) -> None:
        """Wait for a task opened beside the main path, close its row, record what the person decided."""
        await workflow.wait_condition(lambda: task in self.tasks.done or task not in self.side_tasks)
        if task in self.tasks.done:
            await self.tasks.close(task)
            form, who = self.tasks.form(task), self.tasks.actor(task)
            await self._event(kind, f"{form.decision}: {form.comment}", who.user_id)
        self.side_tasks.discard(task)

    async def _tell_orderer(self, title: str, body: str) -> bool:
        return await self._tell("user", self.inp.ordering_clinician_id, title, body)

    async def _deliver_hl7_forever(self) -> None:
        """One message at a time, oldest first; retried until the HIS takes it (or refuses the content)."""
        while True:
            await workflow.wait_condition(lambda: bool(self.hl7_outbox))
            message_id = self.hl7_outbox[0]
            try:
                await workflow.execute_activity(deliver_hl7, HL7Delivery(message_id=message_id), **HL7_DELIVERY_ACTIVITY)
            except ActivityError as err:
                # AE/CE: the HIS will never take this content; the log row says why, the operator sees it.
                await self._event("hl7_refused", f"HIS refused message {message_id}: {err.cause or err}", SYSTEM)
            self.hl7_outbox.pop(0)

    async def _drain_hl7(self) -> None:
        if self.hl7_enabled:
            await workflow.wait_condition(lambda: not self.hl7_outbox)

    def _push_compensation(self, name: str) -> None:
        if name not in self.compensations:
            self.compensations.append(name)

    async def _run_compensations(self, reason: str, actor: str) -> None:
        """Undo what scheduling did, newest first (the cancel saga's compensations)."""
        for name in reversed(self.compensations):
            ref = AccessionAt(key=self._key(), accession_number=self.inp.accession_number, at=workflow.now(),
                              actor=actor, reason=reason)
            if name == "release_slot":
                await run_db(release_slot, ref)
            elif name == "release_exam_slot":
                await run_db(release_exam_slot, SlotRelease(key=ref.key, accession_number=ref.accession_number,
                                                            at=ref.at, actor=actor, reason=reason))
            elif name == "withdraw_worklist":
                await run_db(withdraw_worklist_entries, ref)
            elif name == "leave_queue":
                ref.reason = "left"
                await run_db(set_queue_state, ref)
        self.compensations = []

    async def _cancel_saga(self) -> None:
        req = self.cancel_req
        reason = req.reason if req else "cancelled"
        actor = req.actor.user_id if req else SYSTEM
        await run_db(cancel_open_tasks, CancelTasks(workflow_id=self.wid, at=workflow.now()))
        self.tasks.open.clear()
        self.side_tasks.clear()
        await self._run_compensations(f"cancelled: {reason}", actor)
        await self._tell_orderer("Order cancelled", f"The exam order was cancelled: {reason}")
        await self._advance(LoopStep.cancelled, status="cancelled", summary=f"cancelled: {reason}", actor=actor)
