"""Scheduled procedure steps an order carries (OMI^O23: one per IPC segment), for the DICOM worklist.

The loop books one slot and writes one worklist entry per exam attempt; an OMI
order may ask for several steps (say a CT plain and a contrast phase, each with
its own protocol). Each is stored here, and the worklist offers one item per
step of the entry (`steps_by_accession`), with the step's ID, modality and protocol.
Written idempotently by position, so a resent OMI leaves the same rows.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from pydantic import BaseModel
from sqlmodel import Session, col, select

from domain.procedure_tables import ScheduledStep


class StepIn(BaseModel):
    """One IPC segment as read from the message."""

    step_id: str
    modality: str
    requested_procedure_id: str = ""
    placer_study_instance_uid: str = ""
    protocol_code: str = ""
    protocol_name: str = ""
    station_name: str = ""
    location: str = ""
    station_ae_title: str = ""


def record_steps(sessions: Callable[[], AbstractContextManager[Session]], accession: str,
                 steps: list[StepIn]) -> list[str]:
    """Store the order's steps (replacing what a previous receipt stored); returns their row IDs."""
    with sessions() as s:
        ids = []
        for n, step in enumerate(steps, start=1):
            row = ScheduledStep(id=f"{accession}/{n}", accession_number=accession, seq=n, **step.model_dump())
            s.merge(row)
            ids.append(row.id)
        for stale in s.exec(select(ScheduledStep).where(ScheduledStep.accession_number == accession,
                                                        col(ScheduledStep.seq) > len(steps))).all():
            s.delete(stale)
        s.commit()
        return ids


def steps_by_accession(session: Session, accessions: Iterable[str]) -> dict[str, list[ScheduledStep]]:
    """Each accession's steps in the order the HIS sent them (accessions without any are absent)."""
    wanted = list(set(accessions))
    out: dict[str, list[ScheduledStep]] = {}
    if not wanted:
        return out
    rows = session.exec(select(ScheduledStep).where(col(ScheduledStep.accession_number).in_(wanted))
                        .order_by(col(ScheduledStep.accession_number), col(ScheduledStep.seq))).all()
    for row in rows:
        out.setdefault(row.accession_number, []).append(row)
    return out
