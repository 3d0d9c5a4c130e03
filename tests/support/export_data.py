"""Exams worth exporting for the export tests: patient, order, signed report, real DICOM files on disk."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid
from sqlmodel import Session

from domain.imaging_tables import ImagingInstance, ImagingSeries, ImagingStudy
from domain.tables import ExamOrder, Patient, PatientIdentifier, ReportVersion
from integrations.dicom.store import DicomStore
from tests.support.dicom_files import make_image

NAME, ID_CARD, PHONE = "张三丰", "110101197005011234", "13800138000"


@dataclass
class Exam:
    accession: str
    patient_id: str
    study_uid: str
    files: list[Path] = field(default_factory=list)


def _add_phi(path: Path) -> None:
    """What modalities really put in headers: institution, other IDs, a private tag, dates."""
    ds = pydicom.dcmread(path)
    ds.InstitutionName = "RadLoop Demo Hospital"
    ds.OtherPatientIDs = ID_CARD
    ds.PatientAddress = "北京市东城区1号"
    ds.PatientTelephoneNumbers = PHONE
    ds.OperatorsName = "王技师"
    ds.AcquisitionDate = "20261127"
    ds.AcquisitionDateTime = "20261127101530.000000"
    ds.FrameOfReferenceUID = generate_uid()
    block = ds.private_block(0x0011, "RADLOOP TEST", create=True)
    block.add_new(0x01, "LO", ID_CARD)
    ds.save_as(path, enforce_file_format=True)


def seed_exam(session: Session, data_dir: Path, n: int, *, patient_id: str = "p-export-1", images: int = 2,
              burned_in_extra: bool = False) -> Exam:
    """One exam with a valid signed report and `images` CT instances stored and indexed like the listener does."""
    if session.get(Patient, patient_id) is None:
        session.add(Patient(id=patient_id, name=NAME, sex="M", birth_date=date(1970, 5, 1), phone=PHONE))
        session.flush()
        session.add(PatientIdentifier(patient_id=patient_id, system="ID_CARD", value=f"{ID_CARD[:-1]}{patient_id[-1]}"))
    accession = f"AEXP{n:06d}"
    session.add(ExamOrder(
        accession_number=accession, workflow_id=f"exam-loop-{accession}", placer_system="HIS",
        placer_order_number=f"PO-{accession}", patient_id=patient_id, procedure_code="CT-CHEST", procedure_name="胸部CT平扫",
        modality="CT", body_part="CHEST", priority="routine", ordering_clinician_id="u-clinician",
        ordering_clinician_name="孙医生", ordering_department="ED", clinical_diagnosis=f"{NAME} 咳嗽",
        created_at=datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc), step="closed",
    ))
    session.add(ReportVersion(
        accession_number=accession, version=1, tier="final", status="valid", findings=f"患者{NAME}右肺下叶结节",
        impression="右肺下叶结节，建议随访", author_id="u-radiologist", author_role="radiologist",
        signed_by="u-senior_radiologist", signed_at=datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc),
    ))
    study_uid, series_uid = generate_uid(), generate_uid()
    store = DicomStore(data_dir / "dicom")
    exam = Exam(accession, patient_id, study_uid)
    specs = [("CT", 16)] * images + ([("US", 8)] if burned_in_extra else [])
    for i, (modality, bits) in enumerate(specs, start=1):
        tmp = data_dir / f"src-{accession}-{i}.dcm"
        make_image(tmp, study_uid=study_uid, series_uid=series_uid, patient_id="M001", accession=accession,
                   name=NAME, modality=modality, bits=bits, instance=i, size=32)
        _add_phi(tmp)
        ds = pydicom.dcmread(tmp)
        rel = store.rel_path(study_uid, series_uid, ds.SOPInstanceUID)
        store.write(rel, tmp.read_bytes())
        exam.files.append(store.path(rel))
        session.add(ImagingInstance(sop_instance_uid=ds.SOPInstanceUID, series_instance_uid=series_uid,
                                    study_instance_uid=study_uid, sop_class_uid=str(ds.SOPClassUID),
                                    transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID), instance_number=str(i),
                                    rel_path=rel, size_bytes=tmp.stat().st_size))
    session.add(ImagingSeries(series_instance_uid=series_uid, study_instance_uid=study_uid, modality="CT",
                              num_instances=len(specs)))
    session.add(ImagingStudy(study_instance_uid=study_uid, patient_id="M001", patient_name=NAME, accession_number=accession,
                             order_accession=accession, study_date="20261127", num_series=1, num_instances=len(specs)))
    session.commit()
    return exam
