"""One MPPS step as the exam loop's update (R6.3): what the live handler and the reconciliation replay send.

Both build the event here and send it under `update_id(uid, kind)`, so the loop
records each step of one MPPS at most once, whoever sends it and however often.
"""
from __future__ import annotations

from typing import Literal

from domain.enums import Role
from domain.loop import Actor, ExamEvent, PerformedSeriesRef
from integrations.dicom.mpps_facts import MppsFacts

ExamKind = Literal["started", "completed", "discontinued"]
KIND: dict[str, ExamKind] = {"IN PROGRESS": "started", "COMPLETED": "completed", "DISCONTINUED": "discontinued"}


def update_id(mpps_uid: str, kind: ExamKind) -> str:
    return f"mpps:{mpps_uid}:{kind}"


def exam_event(facts: MppsFacts, kind: ExamKind, calling_ae: str) -> ExamEvent:
    """The step `kind` of this MPPS: started at its start time, ended with its series and contrast."""
    ended = kind != "started"
    return ExamEvent(
        kind=kind,
        actor=Actor(user_id=f"modality:{calling_ae}", role=Role.technologist, name=calling_ae),
        method=facts.description,
        contrast_used=bool(facts.contrast_agent or facts.contrast_volume_ml),
        contrast_agent=facts.contrast_agent,
        contrast_volume_ml=facts.contrast_volume_ml,
        reason=facts.discontinuation_reason if kind == "discontinued" else None,
        source="mpps",
        station_ae=facts.station_ae or calling_ae,
        performed_at=facts.ended_at if ended else facts.started_at,
        performed_series=[PerformedSeriesRef(series_instance_uid=s.series_instance_uid,
                                             num_instances=len(s.sop_instance_uids))
                          for s in facts.performed_series] if ended else [],
    )
