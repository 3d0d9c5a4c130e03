"""Exam and image-QC records (R6.3 method and contrast, R8.2 grades)."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlmodel import select
from temporalio import activity

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.loop import PerformedSeriesRef
from domain.tables import ExamRecord, ImageQCGrade


class ExamProgress(BaseModel):
    key: str
    accession_number: str
    attempt: int
    kind: str  # started | completed | discontinued
    at: datetime
    actor: str
    source: str = "api"
    method: str | None = None
    contrast_used: bool = False
    contrast_agent: str | None = None
    contrast_volume_ml: float | None = None
    reason: str | None = None
    station_ae: str | None = None
    performed_at: datetime | None = None  # the modality's time (MPPS); `at` is the loop's
    performed_series: list[PerformedSeriesRef] = Field(default_factory=list)


class GradeRecord(BaseModel):
    key: str
    accession_number: str
    attempt: int
    grade: str
    reason: str | None
    actor: str
    at: datetime


@activity.defn
def record_exam_progress(p: ExamProgress) -> None:
    with session_scope() as s:
        row = s.exec(select(ExamRecord).where(
            ExamRecord.accession_number == p.accession_number, ExamRecord.attempt == p.attempt
        )).first() or ExamRecord(accession_number=p.accession_number, attempt=p.attempt)
        row.source = p.source
        when = p.performed_at or p.at
        if p.kind == "started":
            row.started_at, row.technologist_id = when, p.actor
        elif p.kind == "completed":
            row.started_at = row.started_at or when
            row.completed_at = when
            row.technologist_id = row.technologist_id or p.actor
            row.method, row.contrast_used = p.method, p.contrast_used
            row.contrast_agent, row.contrast_volume_ml = p.contrast_agent, p.contrast_volume_ml
        s.add(row)
        detail = {"attempt": p.attempt, "source": p.source}
        if p.kind == "completed":
            detail |= {"method": p.method, "contrast_used": p.contrast_used, "contrast_agent": p.contrast_agent}
        if p.reason:
            detail["reason"] = p.reason
        if p.station_ae:
            detail["station_ae"] = p.station_ae
        if p.performed_at:
            detail["performed_at"] = p.performed_at.isoformat()
        if p.performed_series:
            detail["performed_series"] = [s.model_dump() for s in p.performed_series]
        write_event(s, EventInput(key=p.key, accession_number=p.accession_number, at=p.at, actor=p.actor,
                                  kind=f"exam_{p.kind}", summary=f"exam {p.kind} (attempt {p.attempt})", detail=detail))


@activity.defn
def record_image_grade(g: GradeRecord) -> None:
    with session_scope() as s:
        row = s.exec(select(ImageQCGrade).where(
            ImageQCGrade.accession_number == g.accession_number, ImageQCGrade.attempt == g.attempt
        )).first() or ImageQCGrade(accession_number=g.accession_number, attempt=g.attempt, grade=g.grade, graded_by=g.actor)
        row.grade, row.reason, row.graded_by, row.graded_at = g.grade, g.reason, g.actor, g.at
        s.add(row)
        write_event(s, EventInput(key=g.key, accession_number=g.accession_number, at=g.at, actor=g.actor,
                                  kind="image_qc", summary=f"image QC grade {g.grade}",
                                  detail={"grade": g.grade, "reason": g.reason, "attempt": g.attempt}))
