"""Temporal remote codec server: lets the Temporal Web UI and CLI show encrypted payloads.

Protocol (Temporal "remote data encoder"): `POST {endpoint}/encode|/decode`
with `{"payloads": [{"metadata": {key: base64}, "data": base64}]}`, answered
in the same shape. Reading PHI in clear is a privileged act (Permission.payload_decode: managers and
auditors; administrators operate Temporal on encrypted payloads), and every call is audited. The browser-based UI calls
from its own origin, hence the CORS wrapper restricted to this prefix.

    temporal workflow show -w exam-loop-<accession> \
        --codec-endpoint http://127.0.0.1:8000/api/v1/codec --codec-auth "Bearer dev-auditor"

The Web UI (`--ui-codec-endpoint` of the dev server) needs its own access token
passed through to reach it, as any other caller.
"""
from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload

from api.deps import require
from api.errors import ErrorBody
from core.codec import EncryptionCodec, parse_keys
from core.config import get_settings
from domain.tables import User
from security.permissions import Permission
from services.errors import Invalid

CODEC_PREFIX = "/api/v1/codec"
router = APIRouter(prefix=CODEC_PREFIX, tags=["codec"])

CodecUser = Annotated[User, Depends(require(Permission.payload_decode))]


class PayloadJSON(BaseModel):
    metadata: dict[str, str] = Field(default_factory=dict, description="Values base64-encoded")
    data: str = Field("", description="base64-encoded bytes")


class PayloadsJSON(BaseModel):
    payloads: list[PayloadJSON] = Field(default_factory=list)


@lru_cache
def _codec(keys_spec: str) -> EncryptionCodec:
    return EncryptionCodec(parse_keys(keys_spec))


def codec() -> EncryptionCodec:
    return _codec(get_settings().codec_keys)


def _b64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{where} is not valid base64") from None


def to_payloads(body: PayloadsJSON) -> list[Payload]:
    return [
        Payload(
            metadata={k: _b64(v, f"payloads.{i}.metadata.{k}") for k, v in p.metadata.items()},
            data=_b64(p.data, f"payloads.{i}.data"),
        )
        for i, p in enumerate(body.payloads)
    ]


def to_json(payloads: list[Payload]) -> PayloadsJSON:
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return PayloadsJSON(
        payloads=[PayloadJSON(metadata={k: b64(v) for k, v in p.metadata.items()}, data=b64(p.data)) for p in payloads]
    )


_RESPONSES: dict[int | str, dict] = {403: {"model": ErrorBody}, 422: {"model": ErrorBody}}


@router.post("/encode", response_model=PayloadsJSON, responses=_RESPONSES)
async def encode(body: PayloadsJSON, _user: CodecUser) -> PayloadsJSON:
    return to_json(await codec().encode(to_payloads(body)))


@router.post("/decode", response_model=PayloadsJSON, responses=_RESPONSES)
async def decode(body: PayloadsJSON, _user: CodecUser) -> PayloadsJSON:
    try:
        decoded = await codec().decode(to_payloads(body))
    except Invalid:
        raise
    except Exception as err:  # noqa: BLE001 - wrong key, tampered data: the caller's input is at fault
        raise Invalid(f"cannot decode payloads: {err or type(err).__name__}") from err
    return to_json(decoded)


class CodecCORS:
    """CORS for the Temporal Web UI's origins, on the codec endpoints only."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CODEC_PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def temporal_ui_origins() -> list[str]:
    port = get_settings().dev_temporal_ui_port
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
