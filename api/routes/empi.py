"""The EMPI review queue (R4.2.3, R5.1.2): "possible same person" pairs a registrar decides.

- GET  /api/v1/empi/reviews?state=open        pairs oldest first, both patients side by side
- POST /api/v1/empi/reviews/{id}/resolve      {decision: link | keep_separate, reason, surviving_patient_id?}
  link merges the pair (services.patient_merge: identifiers, orders, worklist move to the survivor)
  and every open loop of the merged patient follows the surviving ID before the answer;
  404 no such review, 409 already decided or the merge is refused (inverse, already merged), 422 a
  survivor that is not one of the pair, 503 Temporal unreachable while loops must be told.
- POST /api/v1/empi/merges/{merge_id}/undo    unmerge within the window (services.patient_merge.unmerge);
  the open loops follow the restored patient; 404 no such merge, 409 already undone or too old.
Both are audited through their permissions (security.permissions.AUDITED). Names and personal
numbers are masked as the caller's role must see them.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.deps import SessionDep, TemporalConnectorDep, in_thread, require
from api.errors import ErrorBody
from core.db import session_scope
from domain.empi_tables import PatientMatchReview
from domain.order_changes import PatientMerged
from domain.tables import User
from security.masking import DisplayMasking, masked_model
from security.permissions import Permission
from services.empi_reviews import (
    ReviewDecision,
    ReviewPublic,
    keep_separate,
    link,
    list_reviews,
    open_review,
    public,
    survivor,
)
from services.order_changes import follow_merge
from services.patient_merge import has_open_orders, moved_open_accessions, unmerge

router = APIRouter(prefix="/api/v1/empi", tags=["empi"])

Reader = Annotated[User, Depends(require(Permission.empi_review_read))]
Resolver = Annotated[User, Depends(require(Permission.empi_review_resolve))]


class ReviewPage(BaseModel):
    items: list[ReviewPublic]
    limit: int
    offset: int


class ResolveResult(BaseModel):
    review: ReviewPublic
    merge_id: str | None = None
    loops_followed: list[str] = []
    loops_not_followed: dict[str, str] = {}


@router.get("/reviews", response_model=ReviewPage)
def reviews(
    user: Reader, session: SessionDep,
    state: Literal["open", "same_person", "different_people"] | None = "open",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReviewPage:
    unseal = _sees_numbers(user)
    return masked_model(ReviewPage(items=list_reviews(session, state, limit, offset, unseal), limit=limit,
                                   offset=offset), user.role)


_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such review"},
    409: {"model": ErrorBody, "description": "Already decided, or the merge is refused"},
    422: {"model": ErrorBody, "description": "The survivor is not one of the pair"},
    503: {"model": ErrorBody, "description": "The loop engine is unreachable; nothing was merged"},
}


def _sees_numbers(user: User) -> bool:
    """Whether this role sees personal numbers in full: only then are they unsealed (field_crypto)."""
    return not DisplayMasking.from_settings().masks_identifiers(user.role)


def _review(review_id: str, unseal: bool) -> ReviewPublic:
    with session_scope() as s:
        row = s.get(PatientMatchReview, review_id)
        assert row is not None
        return public(s, row, unseal)


@router.post("/reviews/{review_id}/resolve", response_model=ResolveResult, responses=_REFUSALS)
async def resolve_review(review_id: str, body: ReviewDecision, user: Resolver,
                         connector: TemporalConnectorDep) -> ResolveResult:
    """Link (merge) the pair or keep it separate; the same decision is not taken twice (409)."""
    row = await in_thread(open_review, session_scope, review_id)
    actor = f"user:{user.id}"
    if body.decision == "keep_separate":
        await in_thread(keep_separate, session_scope, review_id, actor, body.reason)
        return masked_model(ResolveResult(review=await in_thread(_review, review_id, _sees_numbers(user))),
                            user.role)
    surviving, merged = survivor(row, body, session_scope)
    # Before merging: when the merged patient has running loops, they must hear of it (else 503, nothing merged).
    client = await connector.get() if await in_thread(has_open_orders, session_scope, merged) else None
    result = await in_thread(link, session_scope, review_id, surviving, merged, actor, body.reason)
    if result.open_accessions and client is None:  # an order arrived in between
        client = await connector.get()
    followed = await follow_merge(client, result.open_accessions, PatientMerged(  # type: ignore[arg-type]
        merge_id=result.merge_id, from_patient_id=merged, to_patient_id=surviving, actor=actor))
    out = ResolveResult(review=await in_thread(_review, review_id, _sees_numbers(user)),
                        merge_id=result.merge_id,
                        loops_followed=followed.followed, loops_not_followed=followed.failed)
    return masked_model(out, user.role)


class UnmergeResult(BaseModel):
    merge_id: str
    restored_patient_id: str
    surviving_patient_id: str
    loops_followed: list[str] = []
    loops_not_followed: dict[str, str] = {}


@router.post("/merges/{merge_id}/undo", response_model=UnmergeResult, responses={
    404: {"model": ErrorBody, "description": "No such merge"},
    409: {"model": ErrorBody, "description": "Already undone, or older than the unmerge window"},
    503: {"model": ErrorBody, "description": "The loop engine is unreachable; nothing was undone"}})
async def undo_merge(merge_id: str, user: Resolver, connector: TemporalConnectorDep) -> UnmergeResult:
    """Put back exactly what a merge moved (within the window); its open loops follow the restored patient."""
    client = await connector.get() if await in_thread(moved_open_accessions, session_scope, merge_id) else None
    actor = f"user:{user.id}"
    result = await in_thread(unmerge, session_scope, merge_id, actor)
    if result.open_accessions and client is None:
        client = await connector.get()
    followed = await follow_merge(client, result.open_accessions, PatientMerged(  # type: ignore[arg-type]
        merge_id=result.merge_id, from_patient_id=result.surviving_id, to_patient_id=result.merged_id,
        actor=actor, undone=True))
    return UnmergeResult(merge_id=result.merge_id, restored_patient_id=result.merged_id,
                         surviving_patient_id=result.surviving_id, loops_followed=followed.followed,
                         loops_not_followed=followed.failed)
