"""When are a study's images "received" (issue 3, R4.2.3)? Decided from the index.

- With MPPS: every SOP instance the COMPLETED MPPS lists in its Performed Series
  Sequence is in the index.
- Without MPPS (or an MPPS that lists no instances): no image arrived for
  settings.dicom_study_stable_seconds and no MPPS for the order is still IN PROGRESS.

The decision is recorded once per study (imaging_study.images_received_at) with a
timeline event `images_received` for the order, keyed so re-checking never
duplicates it. The checks return what they newly marked (`Received`); callers
hand that to announcer.py, which tells the exam loop and queues objective QC
once the marking is committed.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import BaseModel
from sqlmodel import Session, select

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.imaging_tables import ImagingInstance, ImagingStudy, MppsRecord


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def mark_received(s: Session, study: ImagingStudy, how: str) -> None:
    at = _now()
    study.images_received_at = at
    s.add(study)
    if study.order_accession:
        write_event(s, EventInput(
            key=f"images-received:{study.study_instance_uid}", accession_number=study.order_accession, at=at,
            actor="dicom", kind="images_received",
            summary=f"images received: {study.num_instances} in {study.num_series} series ({how})",
            detail={"study_instance_uid": study.study_instance_uid, "instances": study.num_instances,
                    "series": study.num_series, "how": how}))


def _mpps_for(s: Session, study: ImagingStudy) -> list[MppsRecord]:
    if not study.order_accession:
        return []
    return list(s.exec(select(MppsRecord).where(MppsRecord.accession_number == study.order_accession)))


def _referenced(mpps: list[MppsRecord]) -> set[str]:
    return {uid for m in mpps if m.status == "COMPLETED"
            for series in m.performed_series for uid in series.get("sop_instance_uids", [])}


def check_study(s: Session, study: ImagingStudy, stable_seconds: float | None = None) -> bool:
    """Mark the study received if it is; True when it is (now or before)."""
    if study.images_received_at is not None:
        return True
    mpps = _mpps_for(s, study)
    wanted = _referenced(mpps)
    if wanted:
        have = set(s.exec(select(ImagingInstance.sop_instance_uid).where(
            ImagingInstance.sop_instance_uid.in_(wanted))))  # type: ignore[attr-defined]
        if have >= wanted:
            mark_received(s, study, "all MPPS-referenced instances stored")
            return True
        return False
    if stable_seconds is None or any(m.status == "IN PROGRESS" for m in mpps):
        return False
    if _as_utc(study.last_received_at) <= _now() - timedelta(seconds=stable_seconds):
        mark_received(s, study, f"no new image for {stable_seconds:g} s")
        return True
    return False


class Received(BaseModel):
    """A study just marked received, for the loop and for objective QC (announcer.py)."""

    study_instance_uid: str
    accession: str
    num_series: int
    num_instances: int
    how: str  # mpps | stable
    calling_ae: str


def _newly(s: Session, studies: list[ImagingStudy], stable_seconds: float | None) -> list[Received]:
    marked = []
    for study in studies:
        if study.images_received_at is None and check_study(s, study, stable_seconds) and study.order_accession:
            ae = s.exec(select(ImagingInstance.calling_ae).where(
                ImagingInstance.study_instance_uid == study.study_instance_uid)).first() or ""
            how = "mpps" if _referenced(_mpps_for(s, study)) else "stable"
            marked.append(Received(study_instance_uid=study.study_instance_uid, accession=study.order_accession,
                                   num_series=study.num_series, num_instances=study.num_instances, how=how,
                                   calling_ae=ae))
    return marked


def check_studies(study_uids: set[str]) -> list[Received]:
    """After an index batch or an MPPS completion: the MPPS rule only."""
    with session_scope() as s:
        studies = [st for uid in study_uids if (st := s.get(ImagingStudy, uid)) is not None]
        return _newly(s, studies, None)


def check_accession(accession: str) -> list[Received]:
    with session_scope() as s:
        return _newly(s, list(s.exec(select(ImagingStudy).where(ImagingStudy.order_accession == accession))), None)


def sweep(stable_seconds: float) -> list[Received]:
    """The stability rule for every linked study still open; returns what was marked."""
    with session_scope() as s:
        open_studies = list(s.exec(select(ImagingStudy).where(
            ImagingStudy.images_received_at.is_(None),  # type: ignore[union-attr]
            ImagingStudy.order_accession.is_not(None),  # type: ignore[union-attr]
        )))
        return _newly(s, open_studies, stable_seconds)
