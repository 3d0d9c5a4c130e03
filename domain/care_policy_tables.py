"""Care policy versions (R6.2.2): one immutable row per published rule set; the newest is in force."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


class CarePolicyVersion(SQLModel, table=True):
    __tablename__ = "care_policy_version"
    version: int = Field(primary_key=True, description="1, 2, 3 ...; the primary key refuses a second publish of one number")
    rules: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False),
                                  description="domain.care_policy.CarePolicyRules as JSON")
    note: str = Field("", description="What changed and why")
    published_by: str = Field(description="User ID, or 'system' for the seed")
    published_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    based_on: int | None = Field(default=None, description="The version this one was edited from")
