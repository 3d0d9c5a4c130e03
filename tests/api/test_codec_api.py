"""The Temporal remote codec endpoints: round trip, compatibility with the workers' codec, access, CORS."""
from __future__ import annotations

import base64

import pytest
from temporalio.api.common.v1 import Payload

from core.temporal import data_converter

B64 = lambda b: base64.b64encode(b).decode()  # noqa: E731

PLAIN = {"payloads": [{"metadata": {"encoding": B64(b"json/plain")}, "data": B64('{"name":"张三"}'.encode())}]}


async def test_encode_then_decode_round_trip(api, auth):
    enc = await api.post("/api/v1/codec/encode", json=PLAIN, headers=auth("manager"))
    assert enc.status_code == 200, enc.text
    [p] = enc.json()["payloads"]
    assert base64.b64decode(p["metadata"]["encoding"]) == b"binary/encrypted-aesgcm"
    assert "张三".encode() not in base64.b64decode(p["data"])

    dec = await api.post("/api/v1/codec/decode", json=enc.json(), headers=auth("auditor"))
    assert dec.status_code == 200, dec.text
    assert dec.json() == PLAIN


async def test_decodes_what_the_workers_encode(api, auth, settings):
    """Payloads as they sit in Temporal's history (encrypted by the data converter) come back in clear."""
    [stored] = await data_converter(settings).payload_codec.encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=b'{"accession":"A1"}')]
    )
    body = {"payloads": [{"metadata": {k: B64(v) for k, v in stored.metadata.items()}, "data": B64(stored.data)}]}
    r = await api.post("/api/v1/codec/decode", json=body, headers=auth("manager"))
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["payloads"][0]["data"]) == b'{"accession":"A1"}'


@pytest.mark.parametrize("role", ["clinician", "system_admin", "security_admin"])
async def test_clinician_and_administrators_are_403(api, auth, role):
    """Administrators run Temporal without reading PHI in clear (R10.2.3 separation of duties)."""
    r = await api.post("/api/v1/codec/decode", json=PLAIN, headers=auth(role))
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"payloads": [{"metadata": {"encoding": "not base64!"}, "data": ""}]},
        {"payloads": [{"metadata": {"encoding": B64(b"binary/encrypted-aesgcm"), "encryption-key-id": B64(b"dev1")},
                       "data": B64(b"\0" * 40)}]},
    ],
)
async def test_garbage_is_422(api, auth, body):
    r = await api.post("/api/v1/codec/decode", json=body, headers=auth("manager"))
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)


@pytest.mark.parametrize("origin", ["http://127.0.0.1", "http://localhost"])
async def test_preflight_from_the_temporal_ui_is_allowed(api, settings, origin):
    ui = f"{origin}:{settings.dev_temporal_ui_port}"
    r = await api.options(
        "/api/v1/codec/decode",
        headers={
            "Origin": ui,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ui
    assert "x-namespace" in r.headers["access-control-allow-headers"].lower()


async def test_preflight_from_elsewhere_or_other_paths_is_not_allowed(api, settings):
    headers = {"Access-Control-Request-Method": "POST"}
    evil = await api.options("/api/v1/codec/decode", headers={**headers, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    ui = f"http://127.0.0.1:{settings.dev_temporal_ui_port}"
    other = await api.options("/api/v1/orders", headers={**headers, "Origin": ui})
    assert "access-control-allow-origin" not in other.headers
