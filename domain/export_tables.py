"""Bulk exports of personal data (R10.3.4): one row per request, mirroring its approval workflow.

The workflow is the authority on the state; this row is what the API lists and
what the download route checks (state `ready` and not past `expires_at`), so a
link never outlives its window even while the worker is down.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Text
from sqlmodel import Field, SQLModel

from domain.tables import utcnow


def _aware() -> DateTime:
    return DateTime(timezone=True)


class DataExport(SQLModel, table=True):
    __tablename__ = "data_export"
    id: str = Field(primary_key=True, description="EXP-<hex>")
    workflow_id: str = Field(unique=True)
    requested_by: str = Field(index=True, description="User ID of the requester")
    requester_role: str
    purpose: str = Field(sa_column=Column(Text, nullable=False))
    use: str = Field(description="research | teaching | quality | legal | transfer")
    accession_numbers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    include_images: bool = True
    state: str = Field(default="requested", index=True)
    approver_id: str | None = None
    decision_reason: str = ""
    decided_at: datetime | None = Field(default=None, sa_type=_aware())
    file_name: str | None = Field(default=None, description="Under <data dir>/exports while ready")
    sha256: str | None = None
    size_bytes: int | None = None
    records: int = 0
    instances: int = 0
    excluded: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False),
                                     description="Why items were left out (no consent, burned-in text), counted")
    ready_at: datetime | None = Field(default=None, sa_type=_aware())
    expires_at: datetime | None = Field(default=None, sa_type=_aware())
    expired_at: datetime | None = Field(default=None, sa_type=_aware())
    download_count: int = 0
    last_downloaded_at: datetime | None = Field(default=None, sa_type=_aware())
    created_at: datetime = Field(default_factory=utcnow, sa_type=_aware())
