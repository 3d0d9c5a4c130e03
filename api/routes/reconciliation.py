"""Reconciliation of images and MPPS that matched no order (R4.2.3, IHE PIR-like).

- GET  /api/v1/reconciliation?state=open&kind=unmatched_study   the list, oldest first
- POST /api/v1/reconciliation/{item_id}/resolve   {accession_number, note} links the item to the order:
  200 linked (or already linked to that order), 404 no such item, 409 linked elsewhere or gone,
  422 unknown accession or missing note. A linked MPPS is then replayed onto the order's exam
  loop (integrations/dicom/mpps_replay.py) and the answer's `replay` says what the loop took; when
  Temporal is down the link still stands, its steps stay "pending", and the same link again sends them.
Both are audited by the audit middleware (their permissions are in security.permissions.AUDITED);
the link is also a timeline event of the order. Patient names are masked as the caller's role must see them.
"""
from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from api.deps import SessionDep, TemporalConnector, TemporalConnectorDep, in_thread, require
from api.errors import ErrorBody, TemporalUnavailable
from domain.tables import User
from integrations.dicom import mpps_replay
from integrations.dicom.loop_bridge import LoopBridge
from integrations.dicom.reconciliation import (
    ReconciliationError,
    ReconciliationPublic,
    ResolveIn,
    current,
    link,
    list_items,
)
from security.masking import masked_model
from security.permissions import Permission

router = APIRouter(prefix="/api/v1/reconciliation", tags=["reconciliation"])

Reader = Annotated[User, Depends(require(Permission.reconciliation_read))]
Resolver = Annotated[User, Depends(require(Permission.reconciliation_resolve))]


class ReconciliationPage(BaseModel):
    items: list[ReconciliationPublic]
    limit: int
    offset: int


@router.get("", response_model=ReconciliationPage)
def list_reconciliation(
    user: Reader,
    session: SessionDep,
    state: Literal["open", "resolved"] | None = "open",
    kind: Literal["unmatched_study", "unmatched_mpps"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReconciliationPage:
    """Items waiting for a person (state=open), or already linked (state=resolved)."""
    page = ReconciliationPage(items=list_items(session, state, kind, limit, offset), limit=limit, offset=offset)
    return masked_model(page, user.role)


_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such reconciliation item"},
    409: {"model": ErrorBody, "description": "Already linked to another order, or the images are gone"},
    422: {"model": ErrorBody, "description": "No order with that accession number"},
}


async def _replay(connector: TemporalConnector, item: ReconciliationPublic, actor: str) -> ReconciliationPublic:
    """Tell the order's loop what the linked MPPS said; without Temporal its steps stay pending."""
    try:
        client = await connector.get()
    except TemporalUnavailable:
        return item
    bridge = LoopBridge.for_client(client, asyncio.get_running_loop())
    await in_thread(mpps_replay.replay, bridge, item.id.partition(":")[2], actor)
    return await in_thread(current, item.id)


@router.post("/{item_id}/resolve", response_model=ReconciliationPublic, responses=_REFUSALS)
async def resolve_item(item_id: str, body: ResolveIn, user: Resolver,
                       connector: TemporalConnectorDep) -> ReconciliationPublic:
    """Link the item to the order with `accession_number`; the same link twice answers the same
    (and sends a linked MPPS's steps the loop has not heard yet, never one twice)."""
    actor = f"user:{user.id}"
    try:
        linked = await in_thread(link, item_id, body, actor)
    except ReconciliationError as err:
        raise HTTPException(err.status, err.reason) from None
    if linked.kind == "unmatched_mpps" and linked.state == "resolved":
        linked = await _replay(connector, linked, actor)
    return masked_model(linked, user.role)
