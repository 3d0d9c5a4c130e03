"""Development notification sink: where apprise's `json://` URL delivers when no pager exists.

The critical-value loop notifies through a real apprise URL
(`json://127.0.0.1:8000/api/v1/dev/notifications` by default), so in development
and tests the whole path runs for real and the messages land, one JSON line
each, in `<data_dir>/notifications.jsonl`. Mounted only outside production;
apprise sends no credentials to it, so it takes none.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict

from api.deps import declare_public, in_thread
from core.config import get_settings

router = APIRouter(
    prefix="/api/v1/dev/notifications",
    tags=["development"],
    dependencies=[Depends(declare_public("apprise delivers here without credentials; never mounted in production."))],
)

_write_lock = threading.Lock()


class AppriseJSON(BaseModel):
    """apprise's custom JSON payload; extra keys (`:key=value` URL options) are kept."""

    model_config = ConfigDict(extra="allow")

    version: str = "1.0"
    title: str = ""
    message: str = ""
    attachments: list[dict[str, Any]] = []
    type: str = "info"


class ReceivedNotification(AppriseJSON):
    received_at: datetime


def sink_path() -> Path:
    return get_settings().data_dir / "notifications.jsonl"


def _append(record: ReceivedNotification) -> None:
    path = sink_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record.model_dump(mode="json"), ensure_ascii=False)
    with _write_lock, path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def _read_all() -> list[ReceivedNotification]:
    path = sink_path()
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [ReceivedNotification.model_validate_json(line) for line in f if line.strip()]


@router.post("", response_model=ReceivedNotification, status_code=status.HTTP_200_OK)
async def receive(payload: AppriseJSON) -> ReceivedNotification:
    record = ReceivedNotification(**payload.model_dump(), received_at=datetime.now(timezone.utc))
    await in_thread(_append, record)
    return record


@router.get("", response_model=list[ReceivedNotification])
async def list_received() -> list[ReceivedNotification]:
    """Everything received so far, newest last."""
    return await in_thread(_read_all)
