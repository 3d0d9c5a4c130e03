"""Who a department's critical-value ladder reaches and over which channels (R7.1.3 (1)).

Maintained by the quality office: contacts per rung (backup clinician, head,
duty officer) with their own apprise URLs, and the department's channels
(WeCom, DingTalk, SMS gateway, e-mail, webhook) that every critical notice for
it also goes to. Apprise URLs can carry secrets: reads show scheme and host only.
"""
from __future__ import annotations

from typing import Annotated, Literal

import apprise
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import select

from api.deps import in_thread, require
from activities.notifications import redact
from api.errors import ErrorBody
from core.db import session_scope
from domain.critical_tables import DepartmentChannel, DepartmentContact
from security.permissions import Permission
from domain.tables import Department, User
from services.errors import NotFound

router = APIRouter(prefix="/api/v1/departments", tags=["departments"])

Reader = Annotated[User, Depends(require(Permission.department_contacts_read))]
Editor = Annotated[User, Depends(require(Permission.department_contacts_manage))]


def _valid_apprise(url: str) -> str:
    if not apprise.Apprise().add(url):
        raise ValueError(f"not an apprise URL apprise can use: {redact(url)}")
    return url


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    rung: Literal["backup_clinician", "department_head", "duty_officer", "senior_radiologist"]
    name: str = Field(min_length=1, max_length=200)
    user_id: str | None = None
    phone: str | None = Field(None, max_length=40)
    notify_urls: list[str] = Field(default_factory=list, max_length=10)

    _urls = field_validator("notify_urls")(lambda cls, v: [_valid_apprise(u) for u in v])


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    apprise_url: str = Field(min_length=4, max_length=2000)
    enabled: bool = True

    _url = field_validator("apprise_url")(lambda cls, v: _valid_apprise(v))


class ContactPublic(BaseModel):
    id: str
    rung: str
    name: str
    user_id: str | None
    phone: str | None
    channels: list[str]


class ChannelPublic(BaseModel):
    id: str
    name: str
    channel: str
    enabled: bool


class LadderSetup(BaseModel):
    department_id: str
    name: str
    contacts: list[ContactPublic]
    channels: list[ChannelPublic]


def _setup(department_id: str) -> LadderSetup:
    with session_scope() as s:
        dept = s.get(Department, department_id)
        if dept is None:
            raise NotFound(f"no department {department_id}")
        contacts = s.exec(select(DepartmentContact).where(DepartmentContact.department_id == department_id)
                          .order_by(DepartmentContact.rung, DepartmentContact.id)).all()
        channels = s.exec(select(DepartmentChannel).where(DepartmentChannel.department_id == department_id)
                          .order_by(DepartmentChannel.id)).all()
        return LadderSetup(
            department_id=dept.id, name=dept.name,
            contacts=[ContactPublic(id=c.id, rung=c.rung, name=c.name, user_id=c.user_id, phone=c.phone,
                                    channels=[redact(u) for u in c.notify_urls]) for c in contacts],
            channels=[ChannelPublic(id=c.id, name=c.name, channel=redact(c.apprise_url), enabled=c.enabled)
                      for c in channels],
        )


@router.get("/{department_id}/critical-setup", response_model=LadderSetup, responses={404: {"model": ErrorBody}})
async def critical_setup(department_id: str, _user: Reader) -> LadderSetup:
    return await in_thread(_setup, department_id)


def _put_contact(department_id: str, contact_id: str, body: ContactIn) -> LadderSetup:
    with session_scope() as s:
        if s.get(Department, department_id) is None:
            raise NotFound(f"no department {department_id}")
        s.merge(DepartmentContact(id=contact_id, department_id=department_id, **body.model_dump()))
    return _setup(department_id)


@router.put("/{department_id}/critical-contacts/{contact_id}", response_model=LadderSetup,
            responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}})
async def put_contact(department_id: str, contact_id: str, body: ContactIn, _user: Editor) -> LadderSetup:
    """Create or replace one contact of the department's ladder."""
    return await in_thread(_put_contact, department_id, contact_id, body)


def _put_channel(department_id: str, channel_id: str, body: ChannelIn) -> LadderSetup:
    with session_scope() as s:
        if s.get(Department, department_id) is None:
            raise NotFound(f"no department {department_id}")
        s.merge(DepartmentChannel(id=channel_id, department_id=department_id, **body.model_dump()))
    return _setup(department_id)


@router.put("/{department_id}/critical-channels/{channel_id}", response_model=LadderSetup,
            responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def put_channel(department_id: str, channel_id: str, body: ChannelIn, _user: Editor) -> LadderSetup:
    """Create or replace a channel every critical notice for the department also goes to."""
    return await in_thread(_put_channel, department_id, channel_id, body)
