"""Personal numbers stay sealed at the DICOM edge (R10.3.3): matched by blind index, never sent to modalities.

A modality that keys the worklist with an ID card number still finds the patient (exactly, by the
number's blind index), an image whose PatientID is that number still belongs to the order, and the
worklist answer carries the center's record numbers only (security.field_crypto).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from pydicom.datadict import tag_for_keyword
from sqlmodel import Session

from core.db import get_engine, session_scope
from domain.empi import PersonFacts
from domain.orders import PatientIdentifier as IdentIn
from domain.tables import ExamOrder, WorklistEntry
from integrations.dicom import index, worklist
from integrations.dicom.handlers.mwl import item_values
from services.patient_registry import register

ID_CARD = "11010119700501123X"


def _scheduled(patient_id: str) -> ExamOrder:
    order = ExamOrder(
        accession_number="ASEAL00001", workflow_id="exam-loop-ASEAL00001", placer_system="HIS",
        placer_order_number="PO-SEAL-1", patient_id=patient_id, procedure_code="CT-CHEST", procedure_name="胸部CT平扫",
        modality="CT", body_part="CHEST", priority="routine", ordering_clinician_id="u-clinician",
        ordering_clinician_name="孙医生", ordering_department="ED", step="scheduled")
    entry = WorklistEntry(
        id="SPS-SEAL-1", accession_number=order.accession_number, patient_id=patient_id, modality="CT",
        station_ae_title="CT1", room_id="ct-1", scheduled_start=datetime.now(timezone.utc) + timedelta(hours=1),
        procedure_code="CT-CHEST", procedure_name="胸部CT平扫", study_instance_uid="1.2.826.0.1.3680043.10.1")
    with Session(get_engine()) as s:
        s.add(order)
        s.flush()
        s.add(entry)
        s.commit()
        s.refresh(order)
    return order


def test_worklist_and_image_matching_by_sealed_number(database: str) -> None:
    reg = register(session_scope, PersonFacts(
        identifiers=[IdentIn(system="MRN", value="M-SEAL"), IdentIn(system="ID_CARD", value=ID_CARD)],
        name="张三", sex="M", birth_date=date(1970, 5, 1), phone="13800138000"), "test")
    order = _scheduled(reg.patient_id)
    tz = "Asia/Shanghai"
    with Session(get_engine()) as s:
        by_card = worklist.search(s, worklist.WorklistQuery(patient_id=ID_CARD.lower()), tz)
        by_mrn = worklist.search(s, worklist.WorklistQuery(patient_id="M-SEAL"), tz)
        other = worklist.search(s, worklist.WorklistQuery(patient_id="110101197005010013"), tz)
        assert [i.sps_id for i in by_card] == [i.sps_id for i in by_mrn] == ["SPS-SEAL-1"] and other == []
        # An image keyed by the ID card belongs to the order; another number does not.
        assert index._patient_matches(s, order, ID_CARD)
        assert index._patient_matches(s, order, "M-SEAL")
        assert not index._patient_matches(s, order, "110101197005010013")
    _vr, others = item_values(by_card[0], ZoneInfo(tz))[tag_for_keyword("OtherPatientIDsSequence")]
    sent = [item[tag_for_keyword("PatientID")][1] for item in others]
    assert sent == ["M-SEAL"]  # the ID card is not broadcast to modalities, in clear or masked
