"""Care policies (R6.2.2): read the queue's priority rules, publish a new version.

Versions are immutable: editing means publishing a new version based on the newest,
which tiers patients joining from then on; tickets already issued keep their tier and
name the version that gave it. A publish is audited as a configuration change
(security.permissions.AUDITED); the version row itself says who published what, when.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from api.deps import SessionDep, get_clock, require
from api.errors import ErrorBody, InvalidBody
from domain.care_policy import CarePolicyRules
from domain.care_policy_tables import CarePolicyVersion
from domain.tables import User
from security.permissions import Permission
from services import care_policy as svc
from services.care_policy import PolicyPublishIn

router = APIRouter(prefix="/api/v1/care-policy", tags=["queues"])

Reader = Annotated[User, Depends(require(Permission.care_policy_read))]
Publisher = Annotated[User, Depends(require(Permission.care_policy_publish))]


class CarePolicyPublic(BaseModel):
    version: int
    note: str
    published_by: str
    published_at: datetime
    based_on: int | None
    policy: CarePolicyRules

    @classmethod
    def of(cls, row: CarePolicyVersion) -> "CarePolicyPublic":
        return cls(version=row.version, note=row.note, published_by=row.published_by, published_at=row.published_at,
                   based_on=row.based_on, policy=svc.rules_of(row))


@router.get("", response_model=CarePolicyPublic)
def current(_user: Reader, session: SessionDep) -> CarePolicyPublic:
    """The version in force now (the newest)."""
    return CarePolicyPublic.of(svc.versions(session)[0])


@router.get("/versions", response_model=list[CarePolicyPublic])
def versions(_user: Reader, session: SessionDep) -> list[CarePolicyPublic]:
    """Every version, newest first."""
    return [CarePolicyPublic.of(r) for r in svc.versions(session)]


@router.get("/versions/{version}", response_model=CarePolicyPublic, responses={404: {"model": ErrorBody}})
def one_version(version: int, _user: Reader, session: SessionDep) -> CarePolicyPublic:
    return CarePolicyPublic.of(svc.get(session, version))


@router.post("", response_model=CarePolicyPublic, status_code=201,
             responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": InvalidBody}})
def publish(body: PolicyPublishIn, user: Publisher, session: SessionDep, request: Request) -> CarePolicyPublic:
    """Publish a new version (manager or QC officer); an edit based on an older version is refused (409)."""
    return CarePolicyPublic.of(svc.publish(session, body, user.id, get_clock(request).now()))
