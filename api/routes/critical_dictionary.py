"""The critical-value dictionary (R7.1.3 (2), R8.7 (1)): read it, publish a new version.

Versions are immutable: editing means publishing a new version, which applies to
critical values raised from then on; open ones keep the version they started with.
Who published what and when is the version row itself.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api.deps import in_thread, require
from api.errors import ErrorBody
from core.db import session_scope
from domain.critical_dictionary import CriticalItemSpec
from domain.critical_tables import CriticalDictionaryVersion
from security.permissions import Permission
from domain.tables import User
from services.errors import Conflict, NotFound

router = APIRouter(prefix="/api/v1/critical-dictionary", tags=["critical values"])

Reader = Annotated[User, Depends(require(Permission.critical_dictionary_read))]
Editor = Annotated[User, Depends(require(Permission.critical_dictionary_publish))]


class DictionaryVersionPublic(BaseModel):
    version: int
    created_at: datetime
    created_by: str
    note: str
    items: list[CriticalItemSpec]


class DictionaryVersionSummary(BaseModel):
    version: int
    created_at: datetime
    created_by: str
    note: str
    item_count: int


class NewVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    based_on: int = Field(description="The version this edit started from (refused if no longer the newest)")
    note: str = Field(min_length=1, max_length=1000, description="What changed and why")
    items: list[CriticalItemSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> "NewVersionIn":
        codes = [i.code for i in self.items]
        if len(codes) != len(set(codes)):
            raise ValueError("item codes must be unique")
        for item in self.items:
            if not any(r.notify == "phone_call_task" for r in item.ladder):
                raise ValueError(f"item {item.code}: the ladder must end with a phone_call_task rung")
        return self


def _public(row: CriticalDictionaryVersion) -> DictionaryVersionPublic:
    return DictionaryVersionPublic(version=row.version, created_at=row.created_at, created_by=row.created_by,
                                   note=row.note, items=[CriticalItemSpec.model_validate(i) for i in row.items])


def _newest() -> DictionaryVersionPublic:
    with session_scope() as s:
        row = s.exec(select(CriticalDictionaryVersion).order_by(col(CriticalDictionaryVersion.version).desc())).first()
        if row is None:
            raise NotFound("no critical-value dictionary yet")
        return _public(row)


@router.get("", response_model=DictionaryVersionPublic, responses={404: {"model": ErrorBody}})
async def current(_user: Reader) -> DictionaryVersionPublic:
    """The dictionary in force now."""
    return await in_thread(_newest)


def _versions() -> list[DictionaryVersionSummary]:
    with session_scope() as s:
        rows = s.exec(select(CriticalDictionaryVersion).order_by(col(CriticalDictionaryVersion.version).desc())).all()
        return [DictionaryVersionSummary(version=r.version, created_at=r.created_at, created_by=r.created_by,
                                         note=r.note, item_count=len(r.items)) for r in rows]


@router.get("/versions", response_model=list[DictionaryVersionSummary])
async def versions(_user: Reader) -> list[DictionaryVersionSummary]:
    return await in_thread(_versions)


def _version(version: int) -> DictionaryVersionPublic:
    with session_scope() as s:
        row = s.get(CriticalDictionaryVersion, version)
        if row is None:
            raise NotFound(f"no dictionary version {version}")
        return _public(row)


@router.get("/versions/{version}", response_model=DictionaryVersionPublic, responses={404: {"model": ErrorBody}})
async def one_version(version: int, _user: Reader) -> DictionaryVersionPublic:
    return await in_thread(_version, version)


def _publish(body: NewVersionIn, user_id: str) -> DictionaryVersionPublic:
    with session_scope() as s:
        newest = s.exec(select(CriticalDictionaryVersion).order_by(col(CriticalDictionaryVersion.version).desc())).first()
        latest = newest.version if newest else 0
        if body.based_on != latest:
            raise Conflict(f"the dictionary changed meanwhile: newest is version {latest}, edit was based on {body.based_on}")
        row = CriticalDictionaryVersion(version=latest + 1, created_by=user_id, note=body.note,
                                        items=[i.model_dump(mode="json") for i in body.items])
        s.add(row)
        try:
            s.flush()
        except IntegrityError:
            raise Conflict("another version was published at the same moment; reload and retry") from None
        return _public(row)


@router.post("", response_model=DictionaryVersionPublic, status_code=201,
             responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}})
async def publish(body: NewVersionIn, user: Editor) -> DictionaryVersionPublic:
    """Publish a new version (QC officer or manager); concurrent edits are refused, not merged."""
    return await in_thread(_publish, body, user.id)
