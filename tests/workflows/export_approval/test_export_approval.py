"""Bulk export approval (R10.3.4) under the time-skipping server: approver != requester, de-identified
package, every step audited, and the link ends on its timer."""
from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import date, datetime, timedelta, timezone

import pydicom
import pytest
from sqlmodel import Session, col, select

from core.config import get_settings
from core.db import get_engine
from domain.enums import Role
from domain.export_tables import DataExport
from domain.exports import EXPORT_APPROVAL_WORKFLOW, ExportInput, ExportResult, ExportUse, export_workflow_id
from domain.loop import TaskCompletion
from domain.security_tables import AuditRecord
from domain.tables import HumanTask
from services import loop_commands
from services.errors import Forbidden, Invalid
from tests.support.export_data import ID_CARD, NAME, PHONE, seed_exam
from tests.support.loop_driver import actor
from worker import build_worker

WAIT = 60.0


def _session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


async def _until(predicate, what: str):
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        with _session() as s:
            found = predicate(s)
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _row(export_id: str, state: str):
    return lambda s: (r := s.get(DataExport, export_id)) is not None and r.state == state and r


def _task(export_id: str):
    return lambda s: s.exec(select(HumanTask).where(HumanTask.workflow_id == export_workflow_id(export_id),
                                                    HumanTask.state == "open")).first()


def _audit(export_id: str) -> list[str]:
    with _session() as s:
        rows = s.exec(select(AuditRecord).where(AuditRecord.object_id == export_id).order_by(col(AuditRecord.seq))).all()
        return [r.event_type for r in rows]


async def _start(client, task_queue: str, export_id: str, accessions: list[str], **kw):
    inp = ExportInput(export_id=export_id, requested_by=actor(Role.clinician), purpose="follow-up study of lung nodules",
                      use=kw.pop("use", ExportUse.quality), accession_numbers=accessions, **kw)
    return await client.start_workflow(EXPORT_APPROVAL_WORKFLOW, inp, id=export_workflow_id(export_id),
                                       task_queue=task_queue, result_type=ExportResult)


def _decide(role: Role, decision: str = "approve", user_id: str | None = None, task_id: str = "") -> TaskCompletion:
    who = actor(role)
    if user_id:
        who = who.model_copy(update={"user_id": user_id})
    return TaskCompletion(task_id=task_id, actor=who, data={"decision": decision, "reason": "purpose is legitimate"})


async def test_approved_export_is_deidentified_audited_and_expires(ts_env, sqlite_database, task_queue) -> None:
    data_dir = get_settings().data_dir
    with _session() as s:
        exams = [seed_exam(s, data_dir, 1, burned_in_extra=True), seed_exam(s, data_dir, 2, images=1)]
    originals = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for e in exams for f in e.files}
    async with build_worker(ts_env.client, task_queue):
        handle = await _start(ts_env.client, task_queue, "EXP-T1", [e.accession for e in exams], download_seconds=3600)
        task = await _until(_task("EXP-T1"), "the approval task")
        assert task.roles.split() == ["manager"] and task.context["purpose"].startswith("follow-up")
        wid = export_workflow_id("EXP-T1")
        # The requester cannot approve, even holding the approver's role; nor can another role.
        with pytest.raises(Forbidden, match="other than its requester"):
            await loop_commands.complete_task(ts_env.client, wid, _decide(Role.manager, user_id="u-clinician", task_id=task.id))
        with pytest.raises(Forbidden, match="may not complete"):
            await loop_commands.complete_task(ts_env.client, wid, _decide(Role.radiologist, task_id=task.id))
        with pytest.raises(Invalid):
            await loop_commands.complete_task(ts_env.client, wid, TaskCompletion(task_id=task.id, actor=actor(Role.manager),
                                                                              data={"decision": "maybe", "reason": "x"}))
        assert (await _until(_row("EXP-T1", "requested"), "row")).approver_id is None
        await loop_commands.complete_task(ts_env.client, wid, _decide(Role.manager, task_id=task.id))
        row = await _until(_row("EXP-T1", "ready"), "the export to be ready")
        assert row.approver_id == "u-manager" and row.records == 2 and row.instances == 3
        assert row.excluded == {"burned_in_text": 1}  # the ultrasound frame without "BurnedInAnnotation NO"
        assert row.expires_at - row.ready_at == timedelta(hours=1)
        path = data_dir / "exports" / row.file_name
        blob = path.read_bytes()

        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            text = {n: z.read(n) for n in z.namelist()}
        everything = b"".join(text.values())
        for secret in (NAME, ID_CARD, PHONE, "AEXP000001", "PO-AEXP000001", "RadLoop Demo Hospital", "孙医生", "王技师"):
            assert secret.encode() not in everything, secret
        records = json.loads(text["records.json"])
        assert {r["patient"] for r in records} == {records[0]["patient"]}  # one person, one pseudonym
        assert records[0]["age_at_exam"] == "56" and records[0]["sex"] == "M"
        assert "[removed]" in records[0]["report"]["findings"] and "[removed]" in records[0]["diagnosis"]
        shift = (date.fromisoformat(records[0]["exam_date"]) - date(2026, 11, 27)).days
        assert 30 <= abs(shift) <= 365
        dicoms = [pydicom.dcmread(io.BytesIO(b)) for n, b in text.items() if n.endswith(".dcm")]
        assert len(dicoms) == 3
        new_studies = {d.StudyInstanceUID for d in dicoms}
        assert len(new_studies) == 2 and not new_studies & {e.study_uid for e in exams}
        for d in dicoms:
            assert d.PatientIdentityRemoved == "YES" and d.PatientName == records[0]["patient"]
            assert d.PatientID == records[0]["patient"] and d.AccessionNumber in {r["exam"] for r in records}
            assert "PatientBirthDate" in d and d.PatientBirthDate == ""
            assert all(not e.tag.is_private for e in d)
            for kw in ("InstitutionName", "OtherPatientIDs", "PatientAddress", "PatientTelephoneNumbers", "OperatorsName"):
                assert kw not in d, kw
            assert d.SOPInstanceUID not in originals and d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
            assert d.StudyDate == (date(2026, 11, 27) + timedelta(days=shift)).strftime("%Y%m%d")
            assert d.AcquisitionDateTime.startswith(d.StudyDate) and d.AcquisitionDateTime.endswith("101530.000000")
            assert [c.CodeValue for c in d.DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
            assert d.pixel_array.shape == (32, 32)
        # The pixels are the ones sent (the profile changes headers, not images).
        original_pixels = sorted(o.PixelData for o in originals.values() if o.Modality == "CT")
        assert sorted(d.PixelData for d in dicoms) == original_pixels

        assert _audit("EXP-T1")[:3] == ["export_requested", "export_approved", "export_created"]
        await ts_env.sleep(timedelta(hours=1, seconds=1))
        result = await handle.result()
        assert result.state == "expired" and result.approver_id == "u-manager" and result.instances == 3
        row = await _until(_row("EXP-T1", "expired"), "the link to expire")
        assert not path.exists() and row.expired_at is not None
        assert _audit("EXP-T1")[-1] == "export_expired"


async def test_rejected_export_builds_nothing(ts_env, database, task_queue) -> None:
    with _session() as s:
        exam = seed_exam(s, get_settings().data_dir, 3)
    async with build_worker(ts_env.client, task_queue):
        handle = await _start(ts_env.client, task_queue, "EXP-T2", [exam.accession])
        task = await _until(_task("EXP-T2"), "the approval task")
        await loop_commands.complete_task(ts_env.client, export_workflow_id("EXP-T2"),
                                          _decide(Role.manager, "reject", task_id=task.id))
        result = await handle.result()
    assert result.state == "rejected"
    with _session() as s:
        row = s.get(DataExport, "EXP-T2")
        assert row.state == "rejected" and row.file_name is None and row.decision_reason == "purpose is legitimate"
        assert s.get(HumanTask, task.id).state == "done"
    assert not (get_settings().data_dir / "exports" / "EXP-T2.zip").exists()
    assert _audit("EXP-T2") == ["export_requested", "export_rejected"]


async def test_undecided_request_lapses_after_its_window(ts_env, sqlite_database, task_queue) -> None:
    with _session() as s:
        exam = seed_exam(s, get_settings().data_dir, 4)
    async with build_worker(ts_env.client, task_queue):
        handle = await _start(ts_env.client, task_queue, "EXP-T3", [exam.accession], approval_seconds=2 * 24 * 3600)
        task = await _until(_task("EXP-T3"), "the approval task")
        result = await handle.result()  # time skips over the two-day window
    assert result.state == "lapsed"
    with _session() as s:
        assert s.get(HumanTask, task.id).state == "cancelled"
        assert s.get(DataExport, "EXP-T3").state == "lapsed"
    assert _audit("EXP-T3") == ["export_requested", "export_lapsed"]


async def test_research_export_leaves_out_patients_without_consent(ts_env, database, task_queue) -> None:
    from services.consent import ConsentIn, record
    from domain.tables import User

    now = datetime.now(timezone.utc)
    with _session() as s:
        consented = seed_exam(s, get_settings().data_dir, 5, patient_id="p-export-5", images=0)
        other = seed_exam(s, get_settings().data_dir, 6, patient_id="p-export-6", images=0)
        record(s, consented.patient_id, ConsentIn(scope="research", purpose="de-identified research use",
                                                  method="written", given_at=now - timedelta(days=1)),
               s.get(User, "u-registrar"), now)
    async with build_worker(ts_env.client, task_queue):
        await _start(ts_env.client, task_queue, "EXP-T4", [consented.accession, other.accession], use=ExportUse.research)
        task = await _until(_task("EXP-T4"), "the approval task")
        await loop_commands.complete_task(ts_env.client, export_workflow_id("EXP-T4"), _decide(Role.manager, task_id=task.id))
        row = await _until(_row("EXP-T4", "ready"), "the export to be ready")
    assert row.records == 1 and row.excluded == {"no_consent": 1}
