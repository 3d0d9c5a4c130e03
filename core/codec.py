"""Payload codec that keeps PHI out of Temporal histories in clear (AES-256-GCM).

Every payload is encrypted with the first configured key; the key ID travels in
the payload metadata so keys can be rotated: old histories stay readable as long
as their key remains listed.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted-aesgcm"


def parse_keys(spec: str) -> dict[str, bytes]:
    """`kid:base64key,kid2:base64key2` -> ordered {kid: key}."""
    keys: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, b64 = part.partition(":")
        key = base64.b64decode(b64)
        if len(key) != 32:
            raise ValueError(f"codec key {kid!r} must be 32 bytes (AES-256)")
        keys[kid] = key
    if not keys:
        raise ValueError("at least one codec key is required")
    return keys


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = keys
        self._active_kid = next(iter(keys))
        self._ciphers = {kid: AESGCM(k) for kid, k in keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            data = self._ciphers[self._active_kid].encrypt(nonce, p.SerializeToString(), None)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, "encryption-key-id": self._active_kid.encode()},
                    data=nonce + data,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            kid = p.metadata.get("encryption-key-id", b"").decode()
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise ValueError(f"unknown codec key id {kid!r}")
            plain = cipher.decrypt(p.data[:12], p.data[12:], None)
            decoded = Payload()
            decoded.ParseFromString(plain)
            out.append(decoded)
        return out
