"""Temporal client with RadLoop's data converter (pydantic + PHI encryption)."""
from __future__ import annotations

import dataclasses

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
