"""The PHI payload codec: round trip, key rotation, tamper detection."""
from __future__ import annotations

import base64
import os

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload

from core.codec import EncryptionCodec, parse_keys


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def test_round_trip_hides_the_plaintext() -> None:
    codec = EncryptionCodec(parse_keys(f"k1:{_key()}"))
    plain = Payload(metadata={"encoding": b"json/plain"}, data='{"name": "张三"}'.encode())
    [enc] = await codec.encode([plain])
    assert enc.metadata["encryption-key-id"] == b"k1" and "张三".encode() not in enc.data
    assert (await codec.decode([enc]))[0] == plain


async def test_rotated_keys_still_read_old_payloads() -> None:
    old, new = _key(), _key()
    [enc] = await EncryptionCodec(parse_keys(f"k1:{old}")).encode([Payload(data=b"x")])
    rotated = EncryptionCodec(parse_keys(f"k2:{new},k1:{old}"))
    assert (await rotated.decode([enc]))[0].data == b"x"
    [enc2] = await rotated.encode([Payload(data=b"y")])
    assert enc2.metadata["encryption-key-id"] == b"k2"
    with pytest.raises(ValueError, match="unknown codec key id"):
        await EncryptionCodec(parse_keys(f"k1:{old}")).decode([enc2])


async def test_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec(parse_keys(f"k1:{_key()}"))
    [enc] = await codec.encode([Payload(data=b"report")])
    enc.data = enc.data[:-1] + bytes([enc.data[-1] ^ 1])
    with pytest.raises(InvalidTag):
        await codec.decode([enc])


def test_keys_must_be_aes_256() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_keys(f"k1:{base64.b64encode(b'short').decode()}")
    with pytest.raises(ValueError):
        parse_keys("")
