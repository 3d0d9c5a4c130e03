"""Bulk export of personal data (R10.3.4): request, build the de-identified package, check downloads.

The approval itself is a Temporal workflow (workflows/export_approval); this
module is what it and the API share: the request row, the package builder
(records with pseudonyms, ages and shifted dates; DICOM through the PS3.15 basic
profile) and the rule that decides whether a download may happen.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pydicom
from sqlmodel import Session, col, select

from domain.deidentify import Pseudonymizer, age_at, scrub
from domain.dicom_deid import METHOD, BurnedInText, deidentify
from domain.export_tables import DataExport
from domain.exports import CONSENT_REQUIRED_USES, ExportInput, ExportState, export_workflow_id
from domain.imaging_tables import ImagingInstance, ImagingStudy
from domain.tables import ExamOrder, Patient, PatientIdentifier, ReportVersion
from security.field_crypto import clear_identifier, clear_phone
from services.consent import has_consent
from services.errors import Forbidden, NotFound

MAX_EXAMS = 500


def aware(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def new_export_id(requested_by: str, request_key: str | None) -> str:
    """A client's request key makes a resent request the same export; without one, a fresh ID."""
    if request_key:
        return "EXP-" + hashlib.sha256(f"{requested_by}|{request_key}".encode()).hexdigest()[:20].upper()
    return "EXP-" + uuid.uuid4().hex[:20].upper()


def ensure_row(session: Session, inp: ExportInput, now: datetime) -> tuple[DataExport, bool]:
    """The export's row, created once (a resent request or a retried activity finds it)."""
    row = session.get(DataExport, inp.export_id)
    if row is not None:
        return row, False
    row = DataExport(
        id=inp.export_id, workflow_id=export_workflow_id(inp.export_id), requested_by=inp.requested_by.user_id,
        requester_role=inp.requested_by.role.value, purpose=inp.purpose, use=inp.use.value,
        accession_numbers=inp.accession_numbers, include_images=inp.include_images, created_at=aware(now),
    )
    session.add(row)
    return row, True


def exports_dir(data_dir: Path) -> Path:
    path = data_dir / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- building the package -------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    file_name: str
    sha256: str
    size_bytes: int
    records: int
    instances: int
    excluded: dict[str, int]


def _valid_report(session: Session, accession: str) -> ReportVersion | None:
    return session.exec(select(ReportVersion).where(
        ReportVersion.accession_number == accession, ReportVersion.status == "valid")).first()


def _instances(session: Session, accession: str) -> list[ImagingInstance]:
    studies = session.exec(select(ImagingStudy.study_instance_uid).where(ImagingStudy.order_accession == accession)).all()
    if not studies:
        return []
    return list(session.exec(select(ImagingInstance).where(col(ImagingInstance.study_instance_uid).in_(studies))
                             .order_by(col(ImagingInstance.series_instance_uid), col(ImagingInstance.sop_instance_uid))).all())


def _record(session: Session, order: ExamOrder, patient: Patient, p: Pseudonymizer, exam_pseudonym: str,
            identifiers: list[str]) -> dict:
    exam_day = order.created_at.date()
    report = _valid_report(session, order.accession_number)
    known = [patient.name, clear_phone(patient) or "", order.accession_number, order.placer_order_number,
             order.ordering_clinician_name, *identifiers]
    return {
        "exam": exam_pseudonym, "patient": p.pseudonym("patient", patient.id), "sex": patient.sex,
        "age_at_exam": age_at(patient.birth_date, exam_day), "exam_date": p.shift(exam_day).isoformat(),
        "procedure_code": order.procedure_code, "procedure_name": order.procedure_name, "modality": order.modality,
        "body_part": order.body_part, "laterality": order.laterality, "priority": order.priority,
        "diagnosis": scrub(order.clinical_diagnosis, known),
        "report": None if report is None else {
            "findings": scrub(report.findings, known), "impression": scrub(report.impression, known),
            "recommendation": scrub(report.recommendation, known), "critical": report.critical,
            "signed_date": p.shift(report.signed_at.date()).isoformat() if report.signed_at else None,
        },
    }


def build_package(session: Session, export: DataExport, dicom_root: Path, out_dir: Path, now: datetime,
                  p: Pseudonymizer | None = None) -> Package:
    """Write `<out_dir>/<export id>.zip` (records.json, manifest.json, dicom/...) atomically."""
    p = p or Pseudonymizer.fresh()
    excluded: Counter[str] = Counter()
    records, instances = [], 0
    final = out_dir / f"{export.id}.zip"
    tmp = out_dir / f".{export.id}.{uuid.uuid4().hex}.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for accession in export.accession_numbers:
            order = session.get(ExamOrder, accession)
            patient = session.get(Patient, order.patient_id) if order else None
            if order is None or patient is None:
                excluded["unknown_exam"] += 1
                continue
            if export.use in CONSENT_REQUIRED_USES and not has_consent(session, patient.id, export.use, now):
                excluded["no_consent"] += 1
                continue
            # The scrubber must know the numbers to remove them from free text: unsealed here, never exported.
            identifiers = [clear_identifier(i) for i in session.exec(select(PatientIdentifier).where(
                PatientIdentifier.patient_id == patient.id)).all()]
            exam_pseudonym = p.pseudonym("exam", accession, prefix="EX")  # fits SH (16)
            record = _record(session, order, patient, p, exam_pseudonym, identifiers)
            record["images"] = 0
            if export.include_images:
                for inst in _instances(session, accession):
                    path = dicom_root / inst.rel_path
                    if not path.exists():
                        excluded["image_file_missing"] += 1
                        continue
                    ds = pydicom.dcmread(path)
                    try:
                        deidentify(ds, p, record["patient"], exam_pseudonym)
                    except BurnedInText:
                        excluded["burned_in_text"] += 1
                        continue
                    buf = io.BytesIO()
                    ds.save_as(buf, enforce_file_format=True)
                    z.writestr(f"dicom/{exam_pseudonym}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm", buf.getvalue())
                    record["images"] += 1
                    instances += 1
            records.append(record)
        z.writestr("records.json", json.dumps(records, ensure_ascii=False, indent=1))
        z.writestr("manifest.json", json.dumps({
            "export_id": export.id, "use": export.use, "purpose": export.purpose, "approved_by": export.approver_id,
            "records": len(records), "instances": instances, "excluded": dict(excluded),
            "deidentification": METHOD, "dates": "shifted by one undisclosed offset per export (30-365 days)",
            "identifiers": "pseudonyms valid inside this export only",
        }, ensure_ascii=False, indent=1))
    os.replace(tmp, final)
    digest = hashlib.sha256(final.read_bytes()).hexdigest()
    return Package(final.name, digest, final.stat().st_size, len(records), instances, dict(excluded))


# ---- downloads -------------------------------------------------------------------------------


class Gone(NotFound):
    """The download window has ended (410)."""


def downloadable(session: Session, export_id: str, user_id: str, now: datetime, data_dir: Path) -> tuple[DataExport, Path]:
    """The file the requester may download now; Forbidden (not approved, not theirs), Gone (expired)."""
    row = session.get(DataExport, export_id)
    if row is None:
        raise NotFound(f"no export {export_id}")
    if row.requested_by != user_id:
        raise Forbidden(f"export {export_id} was requested by someone else; only its requester downloads it")
    if row.state in (ExportState.requested, ExportState.approved):
        raise Forbidden(f"export {export_id} is not approved and ready (state {row.state})")
    if row.state in (ExportState.rejected, ExportState.lapsed, ExportState.failed):
        raise Forbidden(f"export {export_id} was not approved (state {row.state})")
    expires = aware(row.expires_at)
    if row.state == ExportState.expired or expires is None or expires <= now:
        raise Gone(f"the download link of export {export_id} expired")
    path = exports_dir(data_dir) / (row.file_name or "")
    if not row.file_name or not path.exists():
        raise Gone(f"the file of export {export_id} is no longer there")
    return row, path
