"""The worklist's encoded-response cache never answers with what changed (R4.2.2), queried with DCMTK findscu.

Responses are cached per item content (handlers/mwl.py): each test first queries so the
item is cached, changes a row the way the loop or the EMPI does, and queries again at once.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlmodel import Session, select

from core.db import get_engine, session_scope
from domain.tables import ExamOrder, Patient, PatientIdentifier, WorklistEntry
from services.procedure_steps import StepIn, record_steps
from tests.support.dicom_tools import findscu_worklist, running_listener

SPS = "ScheduledProcedureStepSequence[0]"
AE = "CACHETEST"  # a station of its own: the demo data never matches it
KEYS = ["PatientName", "PatientID", "AccessionNumber", f"{SPS}.ScheduledStationAETitle={AE}",
        f"{SPS}.ScheduledProcedureStepID", f"{SPS}.Modality"]


def _schedule(name: str, mrn: str) -> str:
    """A patient, an order and its scheduled step, as the loop writes them; returns the accession."""
    acc = f"C{uuid.uuid4().hex[:10].upper()}"
    pid = str(uuid.uuid4())
    with Session(get_engine()) as s:
        s.add(Patient(id=pid, name=name, sex="F", birth_date=date(1980, 2, 3)))
        s.flush()
        s.add(PatientIdentifier(patient_id=pid, system="MRN", value=mrn))
        s.add(ExamOrder(
            accession_number=acc, workflow_id=f"exam-loop-{acc}", placer_system="TEST", placer_order_number=acc,
            patient_id=pid, procedure_code="CT-CHEST", procedure_name="胸部CT平扫", modality="CT", body_part="CHEST",
            priority="routine", ordering_clinician_id="u-clinician", ordering_clinician_name="孙医生",
            ordering_department="respiratory", status="scheduled", step="scheduled"))
        s.add(WorklistEntry(
            id=f"{acc}-1", accession_number=acc, patient_id=pid, modality="CT", station_ae_title=AE, room_id="CT1",
            scheduled_start=datetime.now(timezone.utc) + timedelta(hours=2), procedure_code="CT-CHEST",
            procedure_name="胸部CT平扫", study_instance_uid=f"1.2.826.0.1.3680043.10.1.{uuid.uuid4().int % 10**12}"))
        s.commit()
    return acc


def _set_order_status(acc: str, status: str) -> None:
    with session_scope() as s:
        order = s.get(ExamOrder, acc)
        assert order is not None
        order.status = status
        s.add(order)


def _set_entry_status(acc: str, status: str) -> None:
    with session_scope() as s:
        entry = s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc)).one()
        entry.status = status
        s.add(entry)


def _rename(acc: str, name: str) -> None:
    with session_scope() as s:
        order = s.get(ExamOrder, acc)
        assert order is not None
        patient = s.get(Patient, order.patient_id)
        assert patient is not None
        patient.name = name
        s.add(patient)


async def test_cancelled_or_withdrawn_steps_leave_the_worklist_at_once(database, tmp_path: Path) -> None:
    cancelled, withdrawn, kept = (_schedule(n, f"MRN-{n}") for n in ("赵一", "钱二", "孙三"))
    async with running_listener() as lsn:
        before = await findscu_worklist(lsn.port, KEYS, tmp_path / "a")
        assert {h.AccessionNumber for h in before} == {cancelled, withdrawn, kept}  # all three now cached
        _set_order_status(cancelled, "cancelled")  # the cancel saga's order status
        _set_entry_status(withdrawn, "withdrawn")  # its withdraw activity
        after = await findscu_worklist(lsn.port, KEYS, tmp_path / "b")  # no waiting: the very next query
        assert {h.AccessionNumber for h in after} == {kept}


async def test_a_renamed_patient_is_answered_with_the_new_name_in_utf8_and_gb18030(database, tmp_path: Path) -> None:
    acc = _schedule("王五", "MRN-WANG-5")
    async with running_listener() as lsn:
        async def find(*keys: str | bytes) -> list:
            return await findscu_worklist(lsn.port, [*KEYS, *keys], tmp_path / "rsp")

        [hit] = await find("SpecificCharacterSet=GB18030", "PatientName=王五".encode("gb18030"))
        assert hit.AccessionNumber == acc and hit.PatientName == "王五" and hit.SpecificCharacterSet == "GB18030"
        [hit] = await find("SpecificCharacterSet=ISO_IR 192")
        assert hit.PatientName == "王五"

        _rename(acc, "王六")  # ADT A08 through the EMPI ends in this row
        [hit] = await find("SpecificCharacterSet=ISO_IR 192")
        assert hit.PatientName == "王六"
        [hit] = await find("SpecificCharacterSet=GB18030", "PatientName=王六".encode("gb18030"))
        assert hit.PatientName == "王六" and hit.SpecificCharacterSet == "GB18030"
        assert await find("SpecificCharacterSet=GB18030", "PatientName=王五".encode("gb18030")) == []
        [hit] = await find("SpecificCharacterSet=GB18030", "PatientName=王*".encode("gb18030"))
        assert hit.PatientName == "王六"


async def test_new_steps_and_other_return_keys_are_never_served_from_an_old_answer(database, tmp_path: Path) -> None:
    acc = _schedule("李七", "MRN-LI-7")
    async with running_listener() as lsn:
        [hit] = await findscu_worklist(lsn.port, KEYS, tmp_path / "a")
        assert hit.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID == f"{acc}-1"
        assert "PatientBirthDate" not in hit  # not asked for

        [hit] = await findscu_worklist(lsn.port, [*KEYS, "PatientBirthDate"], tmp_path / "b")
        assert hit.PatientBirthDate == "19800203"  # another shape of query: its own answer

        # The HIS sends two steps for the order (OMI^O23 IPC segments): one item per step from now on.
        record_steps(session_scope, acc, [StepIn(step_id="S-PLAIN", modality="CT", protocol_code="P1", protocol_name="平扫"),
                                          StepIn(step_id="S-CONTRAST", modality="CT", protocol_code="P2", protocol_name="增强")])
        hits = await findscu_worklist(lsn.port, KEYS, tmp_path / "c")
        assert sorted(h.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for h in hits) == ["S-CONTRAST", "S-PLAIN"]
