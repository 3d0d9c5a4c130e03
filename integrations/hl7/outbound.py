"""Outbound HL7 v2.5.1 messages to the HIS: ORU^R01 reports and ORM^O01 order status.

Built from the rows the loop wrote (order, patient, report versions), so a
message can be rebuilt at any time and says exactly what the record says:
- ORU^R01: one OBX per report section (findings, impression, recommendation) as
  FT with line breaks kept; OBR-25 / OBX-11 `F` for a final report, `C` for a
  correction, which also names the version it replaces (OBX `PRIOR_VERSION` and
  an NTE with the recall reason); a critical finding is its own OBX and is
  flagged `AA` (critically abnormal, table 0078) in OBX-8, as is the impression;
- ORM^O01 with ORC-1 `SC`: the order's status as the loop moves (ORC-5 from table
  0038: SC scheduled, IP in process, CM completed, CA cancelled, HD on hold).
Every message asks for an original-mode ACK; delivery (activities.hl7_outbound)
counts only AA/CA as delivered.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session, col, select

from domain.scheduling import study_instance_uid
from domain.tables import ExamOrder, Patient, PatientIdentifier, ReportVersion
from integrations.hl7.ack import RADLOOP_APP, hl7_timestamp
from integrations.hl7.parse import Encoding
from security.field_crypto import clear_identifier
from services.procedure_steps import steps_by_accession

ENC = Encoding()
OUTBOUND_VERSION = "2.5.1"
OUTBOUND_CHARSET = "UNICODE UTF-8"
# Loop status (ExamOrder.status) -> HL7 table 0038 order status.
ORDER_STATUS = {
    "accepted": "SC", "scheduled": "SC", "arrived": "IP", "in_progress": "IP", "exam_completed": "IP",
    "re_exam": "IP", "reporting": "IP", "signed": "CM", "reported": "CM", "corrected": "CM", "closed": "CM",
    "cancelled": "CA", "qc_failed": "HD",
}


class BuiltMessage(BaseModel):
    control_id: str
    message_type: str
    text: str
    patient_id: str
    accession_number: str
    placer_order_number: str


def _ts(at: datetime | None) -> str:
    return hl7_timestamp(at) if at else ""


def _ft(text: str) -> str:
    """Free text with its line breaks as \\.br\\ (FT data type)."""
    return "\\.br\\".join(ENC.escape_text(line) for line in text.splitlines()) if text else ""


def _seg(name: str, fields: dict[int, str]) -> str:
    top = max(fields)
    return "|".join([name] + [fields.get(n, "") for n in range(1, top + 1)])


def _msh(message_type: str, control_id: str, his_app: str, his_facility: str) -> str:
    return "|".join(["MSH", ENC.msh2, RADLOOP_APP, RADLOOP_APP, ENC.escape_text(his_app),
                     ENC.escape_text(his_facility), hl7_timestamp(), "", message_type, control_id, "P",
                     OUTBOUND_VERSION, "", "", "", "", "", OUTBOUND_CHARSET])


def _pid(session: Session, patient: Patient) -> str:
    idents = session.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id == patient.id)
                          .order_by(col(PatientIdentifier.id))).all()
    # The HIS is entitled to the numbers it registered: personal numbers are unsealed (security.field_crypto).
    cx = [f"{ENC.escape_text(clear_identifier(i))}^^^{ENC.escape_text(i.system)}" for i in idents]
    cx.append(f"{patient.id}^^^RADLOOP^PI")
    return _seg("PID", {1: "1", 3: "~".join(cx), 5: ENC.escape_text(patient.name),
                        7: patient.birth_date.strftime("%Y%m%d"), 8: patient.sex})


def _orc_obr_common(order: ExamOrder) -> tuple[str, str, str]:
    placer = f"{ENC.escape_text(order.placer_order_number)}^{ENC.escape_text(order.placer_system)}"
    filler = f"{order.accession_number}^{RADLOOP_APP}"
    service = f"{ENC.escape_text(order.procedure_code)}^{ENC.escape_text(order.procedure_name)}"
    return placer, filler, service


def _load(session: Session, accession: str) -> tuple[ExamOrder, Patient]:
    order = session.get(ExamOrder, accession)
    if order is None:
        raise LookupError(f"no order {accession}")
    patient = session.get(Patient, order.patient_id)
    assert patient is not None, "exam_order.patient_id is a foreign key"
    return order, patient


def build_oru(session: Session, accession: str, version: int, kind: str, his_app: str = "HIS",
              his_facility: str = "") -> BuiltMessage:
    """ORU^R01 for report `version` of `accession` (`kind`: final | corrected)."""
    order, patient = _load(session, accession)
    versions = session.exec(select(ReportVersion).where(ReportVersion.accession_number == accession)).all()
    report = next((v for v in versions if v.version == version), None)
    if report is None:
        raise LookupError(f"no report version {version} for {accession}")
    status = "C" if kind == "corrected" else "F"
    placer, filler, service = _orc_obr_common(order)
    control_id = f"ORU{uuid.uuid4().hex[:17].upper()}"
    flag = "AA" if report.critical else ""
    lines = [
        _msh("ORU^R01^ORU_R01", control_id, his_app, his_facility),
        _pid(session, patient),
        _seg("ORC", {1: "RE", 2: placer, 3: filler, 5: "CM",
                     12: f"{ENC.escape_text(order.ordering_clinician_id)}^{ENC.escape_text(order.ordering_clinician_name)}"}),
        _seg("OBR", {1: "1", 2: placer, 3: filler, 4: service, 7: _ts(report.created_at),
                     16: f"{ENC.escape_text(order.ordering_clinician_id)}^{ENC.escape_text(order.ordering_clinician_name)}",
                     22: _ts(report.signed_at), 24: order.modality, 25: status,
                     32: ENC.escape_text(report.signed_by or report.author_id)}),
    ]
    obx: list[tuple[str, str, str, str]] = [
        ("FT", "FINDINGS^Findings^RADLOOP", _ft(report.findings), ""),
        ("FT", "IMPRESSION^Impression^RADLOOP", _ft(report.impression), flag),
    ]
    if report.recommendation:
        obx.append(("FT", "RECOMMENDATION^Recommendation^RADLOOP", _ft(report.recommendation), ""))
    if report.critical and report.critical_finding:
        obx.append(("FT", "CRITICAL^Critical finding^RADLOOP", _ft(report.critical_finding), "AA"))
    if kind == "corrected":
        recalled = max((v for v in versions if v.status == "recalled" and v.version < version),
                       key=lambda v: v.version, default=None)
        if recalled is not None:
            obx.append(("NM", "PRIOR_VERSION^Replaces report version^RADLOOP", str(recalled.version), ""))
            lines.append(_seg("NTE", {1: "1", 3: _ft(
                f"Corrected report v{version} replaces v{recalled.version}: {recalled.recall_reason or 'recalled'}")}))
    for n, (vtype, ident, value, abnormal) in enumerate(obx, start=1):
        lines.append(_seg("OBX", {1: str(n), 2: vtype, 3: ident, 5: value, 8: abnormal, 11: status,
                                  14: _ts(report.signed_at)}))
    return BuiltMessage(control_id=control_id, message_type="ORU^R01", text="\r".join(lines),
                        patient_id=patient.id, accession_number=accession,
                        placer_order_number=order.placer_order_number)


def build_order_status(session: Session, accession: str, status: str, his_app: str = "HIS",
                       his_facility: str = "", message_type: str = "ORM^O01") -> BuiltMessage:
    """ORC-1 SC carrying the order's current status (ORC-5), as ORM^O01 or OMI^O23 (the HIS profile's choice).

    OMI^O23 carries the imaging step too: one IPC per stored scheduled step (else one for the
    order), with the accession, requested procedure ID, Study Instance UID and modality.
    """
    order, patient = _load(session, accession)
    placer, filler, service = _orc_obr_common(order)
    control_id = f"{message_type[:3]}{uuid.uuid4().hex[:17].upper()}"
    structure = {"ORM^O01": "ORM^O01^ORM_O01", "OMI^O23": "OMI^O23^OMI_O23"}[message_type]
    lines = [
        _msh(structure, control_id, his_app, his_facility),
        _pid(session, patient),
        _seg("ORC", {1: "SC", 2: placer, 3: filler, 5: ORDER_STATUS.get(status, "IP"), 9: hl7_timestamp()}),
        _seg("OBR", {1: "1", 2: placer, 3: filler, 4: service, 24: order.modality}),
    ]
    if message_type == "OMI^O23":
        steps = steps_by_accession(session, [accession]).get(accession, [])
        uid = study_instance_uid(accession)
        for step_id, modality in [(st.step_id, st.modality) for st in steps] or [(f"{accession}-1", order.modality)]:
            lines.append(_seg("IPC", {1: f"{accession}^{RADLOOP_APP}", 2: accession, 3: uid,
                                      4: ENC.escape_text(step_id), 5: modality}))
    return BuiltMessage(control_id=control_id, message_type=message_type, text="\r".join(lines),
                        patient_id=patient.id, accession_number=accession,
                        placer_order_number=order.placer_order_number)
