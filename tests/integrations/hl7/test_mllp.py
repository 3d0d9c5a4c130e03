"""MLLP framing over real sockets: our server with our client and with the `hl7` package's client."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import hl7
import pytest
from hl7.mllp import open_hl7_connection

from integrations.hl7.mllp import END_BLOCK, START_BLOCK, Frame, MLLPClient, MLLPServer, Oversized, Peer


class Recorder:
    """A frame handler that answers every frame with `ok:<payload length>` and remembers what it got."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    async def __call__(self, got: Frame, _peer: Peer) -> bytes:
        self.frames.append(got)
        if isinstance(got, Oversized):
            return b"oversized:" + str(got.size).encode() + b":" + got.head[:3]
        return b"ok:" + str(len(got)).encode()


@pytest.fixture
async def server() -> AsyncIterator[tuple[MLLPServer, Recorder]]:
    rec = Recorder()
    srv = MLLPServer(rec, max_frame_bytes=64 * 1024, frame_timeout=0.5)
    await srv.start("127.0.0.1", 0)
    yield srv, rec
    await srv.close()


async def _raw(port: int, data: bytes, read: bool = True, timeout: float = 3) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(), timeout) if read else b""
    writer.close()
    return out


async def _still_serving(port: int) -> None:
    async with MLLPClient("127.0.0.1", port, timeout=3) as client:
        assert await client.send(b"MSH|ping") == b"ok:8"


async def test_our_client_round_trip_and_pipelining(server) -> None:
    srv, rec = server
    async with MLLPClient("127.0.0.1", srv.port, timeout=3) as client:
        assert await client.send(b"MSH|one") == b"ok:7"
        assert await client.send(b"MSH|second") == b"ok:10"
    # Two frames in one write are two messages, answered in order.
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(START_BLOCK + b"a" + END_BLOCK + START_BLOCK + b"bcd" + END_BLOCK)
    await writer.drain()
    replies = await asyncio.wait_for(reader.readexactly(len(b"\x0bok:1\x1c\r\x0bok:3\x1c\r")), 3)
    writer.close()
    assert replies == b"\x0bok:1\x1c\r\x0bok:3\x1c\r"
    assert rec.frames == [b"MSH|one", b"MSH|second", b"a", b"bcd"]


async def test_hl7_package_client(server) -> None:
    srv, rec = server
    reader, writer = await open_hl7_connection("127.0.0.1", srv.port)
    writer.writemessage(hl7.parse("MSH|^~\\&|HIS|MAIN\rPID|1||X"))
    await writer.drain()
    reply = await asyncio.wait_for(reader.readblock(), 3)
    writer.close()
    assert len(rec.frames) == 1 and rec.frames[0].startswith(b"MSH|^~\\&|HIS|MAIN\rPID|1||X")
    assert reply == f"ok:{len(rec.frames[0])}".encode()


async def test_unframed_junk_closes_the_connection_and_the_listener_stays_up(server) -> None:
    srv, rec = server
    assert await _raw(srv.port, b"GET / HTTP/1.1\r\n\r\n") == b""  # closed, nothing answered
    assert rec.frames == []
    await _still_serving(srv.port)


async def test_truncated_frame_is_never_processed(server) -> None:
    srv, rec = server
    await _raw(srv.port, START_BLOCK + b"MSH|^~\\&|half a mess", read=False)
    await asyncio.sleep(0.1)
    assert rec.frames == []
    await _still_serving(srv.port)


async def test_missing_end_block_drops_the_unterminated_frame(server) -> None:
    srv, rec = server
    # First frame lacks 0x1C 0x0D; the next 0x0B starts a new one.
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(START_BLOCK + b"MSH|lost\r" + START_BLOCK + b"MSH|kept" + END_BLOCK)
    await writer.drain()
    reply = await asyncio.wait_for(reader.readexactly(len(b"\x0bok:8\x1c\r")), 3)
    writer.close()
    assert reply == b"\x0bok:8\x1c\r"
    assert rec.frames == [b"MSH|kept"]


async def test_frame_that_never_ends_is_dropped_after_the_timeout(server) -> None:
    srv, rec = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(START_BLOCK + b"MSH|^~\\&|no end")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 3) == b""  # server closed after 0.5 s
    writer.close()
    assert rec.frames == []
    await _still_serving(srv.port)


async def test_oversized_frame_keeps_its_head_and_the_connection(server) -> None:
    srv, rec = server
    big = b"MSH|" + b"x" * (10 * 1024 * 1024)
    async with MLLPClient("127.0.0.1", srv.port, timeout=10) as client:
        assert await client.send(big) == f"oversized:{len(big)}:MSH".encode()
        assert await client.send(b"MSH|after") == b"ok:9"
    first = rec.frames[0]
    assert isinstance(first, Oversized) and first.head.startswith(b"MSH|x") and len(first.head) <= 64 * 1024


async def test_binary_garbage_inside_a_frame_reaches_the_handler_intact(server) -> None:
    srv, rec = server
    junk = bytes(range(256)).replace(b"\x1c\x0d", b"").replace(b"\x0b", b"")
    async with MLLPClient("127.0.0.1", srv.port, timeout=3) as client:
        assert await client.send(junk) == f"ok:{len(junk)}".encode()
    assert rec.frames == [junk]
