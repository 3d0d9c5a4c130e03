"""Check-in verifies identity and collects the exam's consents and notices (R6.1.3, R6.1.4)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from core.config import get_settings
from core.db import get_engine
from domain.consent_notices import notice_sha256
from domain.security_tables import AuditRecord
from services.consent_signatures import path_of as signature_path
from domain.consent_tables import ConsentRecord
from domain.enums import Role
from domain.loop import TaskCompletion, exam_loop_workflow_id
from domain.tables import DomainEvent, HumanTask
from services import loop_commands
from services.errors import Invalid
from tests.support.loop_driver import LoopDriver, actor
from tests.support.signatures import signature_png, store_signature
from worker import build_worker

WOMAN_30 = {"name": "李娜", "sex": "F", "birth_date": (datetime.now(timezone.utc) - timedelta(days=30 * 366)).date().isoformat()}
CONTRAST_CT = {"code": "CT-ABD-C", "name": "腹部增强CT / CT abdomen contrast", "modality": "CT", "body_part": "ABDOMEN"}


async def test_check_in_refuses_until_identity_and_required_signatures(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        other = await d.place(patient=WOMAN_30)  # another patient of the same name: a same-name warning
        order = await d.place(patient=WOMAN_30, procedure=CONTRAST_CT)
        acc = order.accession_number
        assert other.patient_id != order.patient_id  # different MRNs: two patients, one name
        await d.complete(acc, "schedule_exam", Role.registrar, {
            "action": "retry", "egfr": 90, "egfr_at": datetime.now(timezone.utc).isoformat()})
        wid = exam_loop_workflow_id(acc)
        task_id = await d.wait_task(wid, "check_in")
        with Session(get_engine()) as s:
            context = s.get(HumanTask, task_id).context
        assert context["required"] == ["contrast_consent", "radiation_notice"]
        assert context["same_name_patients"] == 1

        async def attempt(data: dict) -> None:
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(
                task_id=task_id, actor=actor(Role.registrar), data=data))

        identity = {"identity_document_type": "id_card", "identity_verified": True}
        with pytest.raises(Invalid, match="identity_verified"):
            await attempt({"identity_document_type": "id_card", "identity_verified": False})
        with pytest.raises(Invalid, match="needs signed first: contrast_consent, radiation_notice"):
            await attempt(identity)
        with pytest.raises(Invalid, match="needs signed first: radiation_notice"):
            await attempt(identity | {"signed": ["contrast_consent"], "consent_method": "written"})
        with pytest.raises(Invalid, match="signature_sha256"):
            await attempt(identity | {"signed": ["contrast_consent", "radiation_notice"]})
        signed = {"signed": ["contrast_consent", "radiation_notice"]}
        png = signature_png()
        digest = hashlib.sha256(png).hexdigest()
        with pytest.raises(Invalid, match="needs signature_ref: upload the signature image first"):
            await attempt(identity | signed | {"signature_sha256": digest})  # a hash alone proves nothing
        upload = store_signature(acc, png, ["contrast_consent", "radiation_notice"])
        await attempt(identity | signed | {"signature_sha256": digest, "signature_ref": upload.signature_ref})
        await d.wait_step(acc, "arrived")

        with Session(get_engine()) as s:
            [consent] = s.exec(select(ConsentRecord).where(ConsentRecord.accession_number == acc)).all()
            assert (consent.scope, consent.decision, consent.method, consent.recorded_by) == (
                "contrast_agent", "granted", "electronic", "u-registrar")
            # R6.1.4: the image, the text signed, when, who signed, who witnessed.
            assert (consent.signature_ref, consent.signature_sha256, consent.notice_sha256) == (
                upload.signature_ref, digest, notice_sha256(["contrast_consent", "radiation_notice"], "zh-CN"))
            assert (consent.signer, consent.witness_user_id) == ("patient", "u-registrar")
            assert consent.signed_at is not None and consent.signed_at == consent.given_at
            [event] = s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc,
                                                       DomainEvent.kind == "checked_in")).all()
            assert event.detail["signature_sha256"] == digest and event.detail["identity_document_type"] == "id_card"
            assert event.detail["signed"] == ["contrast_consent", "radiation_notice"]
            assert event.detail["consent_ids"] == [consent.id]
            assert event.detail["notice_sha256"] == consent.notice_sha256
            [audit] = s.exec(select(AuditRecord).where(AuditRecord.event_type == "consent_signed")).all()
            assert (audit.object_id, audit.user_id, audit.action, audit.outcome) == (acc, "u-registrar", "C", "success")
            assert audit.detail["signature_sha256"] == digest and audit.detail["consent_ids"] == [consent.id]
        assert signature_path(get_settings().data_dir, digest).read_bytes() == png


async def test_a_signature_whose_stored_image_changed_is_not_recorded_and_check_in_reopens(
        ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        order = await d.place(procedure=CONTRAST_CT)
        acc = order.accession_number
        await d.complete(acc, "schedule_exam", Role.registrar, {
            "action": "retry", "egfr": 90, "egfr_at": datetime.now(timezone.utc).isoformat()})
        wid = exam_loop_workflow_id(acc)
        task_id = await d.wait_task(wid, "check_in")
        png = signature_png()
        upload = store_signature(acc, png, ["contrast_consent"])
        signature_path(get_settings().data_dir, upload.signature_sha256).write_bytes(png[:-1] + b"\x00")  # altered on disk
        await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(  # straight to the loop: no API pre-check
            task_id=task_id, actor=actor(Role.registrar), data={
                "identity_document_type": "id_card", "identity_verified": True, "signed": ["contrast_consent"],
                "signature_sha256": upload.signature_sha256, "signature_ref": upload.signature_ref}))
        again = await d.wait_task(wid, "check_in")
        assert again != task_id
        with Session(get_engine()) as s:
            assert "no longer matches its hash" in s.get(HumanTask, again).context["signature_refused"]
            assert s.exec(select(ConsentRecord).where(ConsentRecord.accession_number == acc)).first() is None
            assert s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc,
                                                    DomainEvent.kind == "check_in_signature_refused")).first()
        assert (await d.status(acc)).step == "scheduled"


async def test_a_man_for_a_plain_ct_signs_nothing(ts_env, sqlite_database, task_queue) -> None:
    async with build_worker(ts_env.client, task_queue):
        d = LoopDriver(ts_env.client, task_queue)
        acc = (await d.place()).accession_number
        task_id = await d.wait_task(exam_loop_workflow_id(acc), "check_in")
        with Session(get_engine()) as s:
            assert s.get(HumanTask, task_id).context["required"] == []
        await d.check_in(acc)
        await d.wait_step(acc, "arrived")
        with Session(get_engine()) as s:
            assert s.exec(select(ConsentRecord).where(ConsentRecord.accession_number == acc)).first() is None
            event = s.exec(select(DomainEvent).where(DomainEvent.accession_number == acc,
                                                     DomainEvent.kind == "checked_in")).one()
            assert event.summary == "identity checked (id_card); signed: nothing required"
