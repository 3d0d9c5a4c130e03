"""Critical-value dictionary versions and the people each department's ladder reaches."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


class CriticalDictionaryVersion(SQLModel, table=True):
    """An immutable snapshot of the whole dictionary; the newest version is in force."""

    __tablename__ = "critical_dictionary_version"
    version: int = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str
    note: str = ""
    items: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class DepartmentContact(SQLModel, table=True):
    """Who a ladder rung reaches in a department, and over which channels."""

    __tablename__ = "department_contact"
    id: str = Field(primary_key=True)
    department_id: str = Field(index=True)
    rung: str = Field(index=True, description="backup_clinician | department_head | duty_officer | senior_radiologist")
    name: str
    user_id: str | None = None
    phone: str | None = None
    notify_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class DepartmentChannel(SQLModel, table=True):
    """Channels every critical notice for a department also goes to (WeCom, DingTalk, SMS, e-mail...)."""

    __tablename__ = "department_channel"
    id: str = Field(primary_key=True)
    department_id: str = Field(index=True)
    name: str
    apprise_url: str
    enabled: bool = True
