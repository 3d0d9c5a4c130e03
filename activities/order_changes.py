"""Apply an accepted order change (ORC-1 XO) to the rows: the order, its scheduled worklist steps, an event.

Run by the exam loop's `change_order` update after its validator admitted the
change (before the exam started), so the row never changes under an exam in
progress. Keyed like every loop write: a retry leaves one event.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.order_changes import CHANGEABLE_FIELDS, OrderChange
from domain.tables import ExamOrder, WorklistEntry


class OrderChangeWrite(BaseModel):
    key: str
    accession_number: str
    at: datetime
    change: OrderChange


@activity.defn
def apply_order_change(req: OrderChangeWrite) -> list[str]:
    """Set the changed columns; returns the names of those that really changed."""
    with session_scope() as s:
        order = s.get(ExamOrder, req.accession_number)
        if order is None:
            raise ApplicationError(f"no order {req.accession_number}", type="NotFound", non_retryable=True)
        before: dict[str, object] = {}
        for name, value in req.change.changes.items():
            if name in CHANGEABLE_FIELDS and getattr(order, name) != value:
                before[name] = getattr(order, name)
                setattr(order, name, value)
        if not before:
            return []
        order.updated_at = req.at
        s.add(order)
        if {"procedure_code", "procedure_name"} & before.keys():
            for entry in s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == req.accession_number,
                                                             WorklistEntry.status == "scheduled")):
                entry.procedure_code, entry.procedure_name = order.procedure_code, order.procedure_name
                s.add(entry)
        write_event(s, EventInput(
            key=req.key, accession_number=req.accession_number, at=req.at, actor=req.change.actor.user_id,
            kind="order_changed", summary="order changed: " + ", ".join(sorted(before)),
            detail={"changes": {k: [before[k], getattr(order, k)] for k in sorted(before)},
                    "source": req.change.source, "reason": req.change.reason},
        ))
        return sorted(before)
