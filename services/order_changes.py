"""Changing a running loop's order (HL7 XO) and making loops follow a patient merge.

One way for every edge: the loop's `change_order` update decides (before the
exam: applied; after: refused with the reason), and `patient_merged` moves a
loop's patient ID and PatientId search attribute to the surviving patient.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from temporalio.client import Client

from domain.loop import ActionAck, exam_loop_workflow_id
from domain.order_changes import CHANGEABLE_FIELDS, OrderChange, PatientMerged
from domain.orders import OrderIn
from domain.tables import ExamOrder
from services.errors import Invalid, LoopError
from services.loop_commands import _update

log = logging.getLogger("radloop.order_changes")


class ChangeRefused(Invalid):
    """What an order change cannot do; `field` is the OrderIn field ("modality", "priority")."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def order_changes(row: ExamOrder, order: OrderIn) -> dict[str, str | bool | None]:
    """The columns whose value `order` changes; ChangeRefused for what a change cannot do (it moves the booking)."""
    if order.procedure.modality != row.modality:
        raise ChangeRefused("modality", f"the modality cannot change ({row.modality} -> "
                            f"{order.procedure.modality}): cancel the order and place a new one")
    if order.priority.value != row.priority:
        raise ChangeRefused("priority", f"the priority cannot change ({row.priority} -> {order.priority.value}): "
                            "cancel the order and place a new one")
    wanted: dict[str, str | bool | None] = {
        "procedure_code": order.procedure.code, "procedure_name": order.procedure.name,
        "body_part": order.procedure.body_part, "laterality": order.procedure.laterality,
        "ordering_clinician_id": order.ordering.clinician_id,
        "ordering_clinician_name": order.ordering.clinician_name,
        "ordering_department": order.ordering.department,
        "clinical_history": order.clinical.history, "clinical_diagnosis": order.clinical.diagnosis,
        "clinical_purpose": order.clinical.purpose,
        "special_mdro": order.special.mdro, "special_infectious": order.special.infectious,
        "special_critical": order.special.critical,
    }
    assert set(wanted) <= set(CHANGEABLE_FIELDS)
    return {k: v for k, v in wanted.items() if getattr(row, k) != v}


async def change_order(client: Client, accession: str, change: OrderChange) -> ActionAck:
    return await _update(client, exam_loop_workflow_id(accession), "change_order", change, ActionAck)


@dataclass
class FollowResult:
    followed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # accession -> reason (the loop closed meanwhile, ...)


async def follow_merge(client: Client, accessions: list[str], merged: PatientMerged) -> FollowResult:
    """Tell each open loop of the merged-away patient who its patient is now.

    The rows already moved (services.patient_merge); a loop that closed meanwhile
    has nothing left to follow, so its failure is reported, not raised.
    """
    out = FollowResult()
    for accession in accessions:
        try:
            await _update(client, exam_loop_workflow_id(accession), "patient_merged", merged, ActionAck)
            out.followed.append(accession)
        except LoopError as err:
            out.failed[accession] = err.reason
            log.info("loop %s did not follow merge %s: %s", accession, merged.merge_id, err.reason)
    return out
