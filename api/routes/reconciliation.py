"""Reconciliation of images and MPPS that matched no order (R4.2.3, IHE PIR-like).

- GET  /api/v1/reconciliation?state=open&kind=unmatched_study   the list, oldest first
- POST /api/v1/reconciliation/{item_id}/resolve   {accession_number, note} links the item to the order:
  200 linked (or already linked to that order), 404 no such item, 409 linked elsewhere or gone,
  422 unknown accession or missing note.
Both are audited by the audit middleware (their permissions are in security.permissions.AUDITED);
the link is also a timeline event of the order. Patient names are masked as the caller's role must see them.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from api.deps import SessionDep, require
from api.errors import ErrorBody
from domain.tables import User
from integrations.dicom.reconciliation import (
    ReconciliationError,
    ReconciliationPublic,
    ResolveIn,
    list_items,
    resolve,
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


@router.post("/{item_id}/resolve", response_model=ReconciliationPublic, responses=_REFUSALS)
def resolve_item(item_id: str, body: ResolveIn, user: Resolver, session: SessionDep) -> ReconciliationPublic:
    """Link the item to the order with `accession_number`; the same link twice answers the same."""
    try:
        linked = resolve(session, item_id, body, actor=f"user:{user.id}")
    except ReconciliationError as err:
        session.rollback()
        raise HTTPException(err.status, err.reason) from None
    return masked_model(linked, user.role)
