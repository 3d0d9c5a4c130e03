"""Replaying a reconciled MPPS onto its order's exam loop (R6.3, R4.2.3).

An MPPS that matched no order reached no loop. Once a person links it to an order,
what it said is sent to that order's loop, in order: exam started (performed
station and start time), then completed or discontinued (performed series,
contrast, end time), through the same update the live MPPS handler sends
(mpps_events.py over LoopBridge) and under the same update IDs, so a step is
never recorded twice, whoever sends it and however often.

Each step's outcome is a timeline event of the order keyed `mpps-replay:<uid>:<kind>`:
`mpps_replayed`, or `mpps_replay_skipped` with the loop's reason when its
validator refuses (a loop already past that step is not moved back; one whose
patient is not checked in is not forced). A step with an outcome is never sent
again. A step the loop could not be reached for has none yet ("pending"): linking
the item again to the same order sends it then.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel
from pydicom.dataset import Dataset
from sqlmodel import Session

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.imaging_tables import MppsRecord
from domain.tables import DomainEvent
from integrations.dicom import completeness, qc_runner
from integrations.dicom.announcer import tell_loop
from integrations.dicom.loop_bridge import LoopBridge
from integrations.dicom.mpps_events import KIND, ExamKind, exam_event, update_id
from integrations.dicom.mpps_facts import read_facts
from services.errors import LoopError

log = logging.getLogger("radloop.dicom.mpps_replay")
REPLAYED, SKIPPED = "mpps_replayed", "mpps_replay_skipped"


class ReplayStep(BaseModel):
    kind: ExamKind
    outcome: Literal["replayed", "skipped", "pending"]
    reason: str | None = None


def _key(mpps_uid: str, kind: ExamKind) -> str:
    return f"mpps-replay:{mpps_uid}:{kind}"


def _steps(record: MppsRecord) -> list[ExamKind]:
    """N-CREATE is always IN PROGRESS, so the exam started; a final status adds its ending."""
    return ["started"] + ([KIND[record.status]] if record.status in ("COMPLETED", "DISCONTINUED") else [])


def outcomes(s: Session, record: MppsRecord) -> list[ReplayStep]:
    """What became of each step of this MPPS on its order's loop so far."""
    out = []
    for kind in _steps(record):
        ev = s.get(DomainEvent, _key(record.sop_instance_uid, kind))
        if ev is None:
            out.append(ReplayStep(kind=kind, outcome="pending", reason="not yet told to the loop"))
        elif ev.kind == REPLAYED:
            out.append(ReplayStep(kind=kind, outcome="replayed"))
        else:
            out.append(ReplayStep(kind=kind, outcome="skipped", reason=str(ev.detail.get("reason") or "")))
    return out


def _write(record: MppsRecord, kind: ExamKind, actor: str, reason: str | None) -> None:
    with session_scope() as s:
        write_event(s, EventInput(
            key=_key(record.sop_instance_uid, kind), accession_number=record.accession_number,
            at=datetime.now(timezone.utc), actor=actor, kind=SKIPPED if reason else REPLAYED,
            summary=(f"MPPS exam {kind} not replayed: {reason}" if reason
                     else f"MPPS exam {kind} replayed onto the loop")[:500],
            detail={"mpps": record.sop_instance_uid, "step": kind, "reason": reason}))


def _images_in(bridge: LoopBridge, accession: str) -> None:
    """As after a live COMPLETED: the MPPS's series may complete the study's images."""
    try:
        for item in completeness.check_accession(accession):
            qc_runner.submit(item.study_instance_uid, item.accession)
            tell_loop(bridge, item)
    except Exception:
        log.exception("images-received check failed for %s", accession)


def replay(bridge: LoopBridge, mpps_uid: str, actor: str) -> list[ReplayStep]:
    """Send the steps of a linked MPPS that have no outcome yet; the outcome of every step."""
    with session_scope() as s:
        record = s.get(MppsRecord, mpps_uid)
        if record is None or not record.accession_number:
            return []
        s.expunge(record)
        done = {step.kind for step in outcomes(s, record) if step.outcome != "pending"}
    facts = read_facts(Dataset.from_json(record.attributes))
    for kind in _steps(record):
        if kind in done:
            continue
        event = exam_event(facts, kind, record.calling_ae)
        try:
            bridge.record_exam_event(record.accession_number, event, update_id(mpps_uid, kind))
        except LoopError as err:
            _write(record, kind, actor, err.reason)
            continue
        except Exception as exc:  # noqa: BLE001 - Temporal down or slow: the step stays pending
            log.warning("replay of MPPS %s (%s) to %s: loop unreachable: %s", mpps_uid, kind,
                        record.accession_number, exc)
            break
        _write(record, kind, actor, None)
        if kind == "completed":
            _images_in(bridge, record.accession_number)
    with session_scope() as s:
        return outcomes(s, record)
