"""Temporal client with RadLoop's data converter (pydantic + PHI encryption)."""
from __future__ import annotations

import dataclasses
import json

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from core.codec import EncryptionCodec, parse_keys
from core.config import Settings, get_settings

SEARCH_ATTRIBUTES = {
    "Accession": "Keyword",
    "PatientId": "Keyword",
    "LoopStep": "Keyword",
    "Priority": "Keyword",
    "Critical": "Bool",
}


def data_converter(settings: Settings | None = None) -> DataConverter:
    settings = settings or get_settings()
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(parse_keys(settings.codec_keys))
    )


async def connect(settings: Settings | None = None, address: str | None = None) -> Client:
    settings = settings or get_settings()
    return await Client.connect(
        address or settings.resolved_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )


def dev_server_search_attribute_args() -> list[str]:
    args: list[str] = []
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


LOCAL_ACTIVITY_MARKER = "core_local_activity"  # the marker a local activity leaves in a history


def local_activity_type(ev: HistoryEvent) -> str | None:
    """The activity type recorded by a local activity's marker event, else None.

    Local activities (workflows/db_writes.py) leave no ActivityTask* events, only this
    marker; timelines and benchmarks read it so they see every activity the loop ran.
    """
    if ev.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    m = ev.marker_recorded_event_attributes
    if m.marker_name != LOCAL_ACTIVITY_MARKER:
        return None
    payloads = m.details["data"].payloads if "data" in m.details else []
    data = json.loads(payloads[0].data) if payloads else {}
    return str(data.get("activity_type", "?"))
