"""Care policy versions (R6.2.2): the one in force, the history, and publishing a new one.

Publishing follows the critical dictionary: the editor names the version they started
from, and a publish based on anything but the newest is refused (409), never merged.
`current_policy` is the single read the queue uses when it tiers a patient.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.care_policy import SEED_NOTE, SEED_RULES, CarePolicyRules
from domain.care_policy_tables import CarePolicyVersion
from domain.queueing.policy import CarePolicy
from services.errors import Conflict, NotFound


class PolicyPublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    based_on: int = Field(ge=1, description="The version this edit started from (refused if no longer the newest)")
    note: str = Field(min_length=1, max_length=1000, description="What changed and why")
    policy: CarePolicyRules


def _seed_row() -> CarePolicyVersion:
    return CarePolicyVersion(version=1, rules=SEED_RULES.model_dump(mode="json"), note=SEED_NOTE, published_by="system")


def seed(session: Session) -> None:
    """Version 1, today's built-in behaviour, when the table is empty (reference data)."""
    if session.exec(select(CarePolicyVersion.version)).first() is None:
        session.add(_seed_row())
        session.flush()


def _newest(session: Session) -> CarePolicyVersion | None:
    return session.exec(select(CarePolicyVersion).order_by(col(CarePolicyVersion.version).desc())).first()


def rules_of(row: CarePolicyVersion) -> CarePolicyRules:
    return CarePolicyRules.model_validate(row.rules)


def current_policy(session: Session) -> CarePolicy:
    """The policy in force: the newest published version; the seed (version 1) before anything was stored."""
    row = _newest(session)
    return rules_of(row).policy(row.version) if row is not None else SEED_RULES.policy(1)


def versions(session: Session) -> list[CarePolicyVersion]:
    """Newest first; a database nobody seeded shows the seed it would run on."""
    rows = list(session.exec(select(CarePolicyVersion).order_by(col(CarePolicyVersion.version).desc())).all())
    return rows or [_seed_row()]


def get(session: Session, version: int) -> CarePolicyVersion:
    row = next((r for r in versions(session) if r.version == version), None)
    if row is None:
        raise NotFound(f"no care policy version {version}")
    return row


def publish(session: Session, body: PolicyPublishIn, published_by: str, now: datetime) -> CarePolicyVersion:
    """Store `body.policy` as the next version; Conflict when `based_on` is not the newest."""
    seed(session)  # the seed is version 1 of the history even where reference data was never loaded
    newest = _newest(session)
    latest = newest.version if newest is not None else 0
    if body.based_on != latest:
        raise Conflict(f"the care policy changed meanwhile: newest is version {latest}, "
                       f"this edit was based on version {body.based_on}")
    row = CarePolicyVersion(version=latest + 1, rules=body.policy.model_dump(mode="json"), note=body.note,
                            published_by=published_by, published_at=now, based_on=body.based_on)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("another care policy version was published at the same moment; reload and retry") from None
    session.refresh(row)
    return row
