"""MLLP framing (0x0B <message> 0x1C 0x0D) over asyncio: a server and a client.

Framing is kept apart from HL7 so that its failure modes are decided here, once:
- bytes that do not open with 0x0B are unframed junk: the connection is closed,
  because there is no message boundary to resynchronise on;
- a frame larger than `max_frame_bytes` is read to its end and discarded; the
  handler gets its head (enough to read MSH and answer AR), so a well-behaved
  sender learns why, and the connection stays usable;
- a frame left open (no 0x1C 0x0D) longer than `frame_timeout` is dropped with
  the connection; a new 0x0B inside an open frame means the previous frame was
  never terminated: the unterminated part is dropped, never processed;
- a connection closed mid-frame is a truncated frame: nothing is processed.
Idle connections between frames are fine (HIS interfaces keep them open for days).

Every other network wait is bounded (frame timeout, write timeout, close timeout, the
client's timeout), with `asyncio.timeout` rather than `asyncio.wait_for`: on Python 3.11
`wait_for` swallows a cancellation that arrives as its inner future completes (a refused
connect, an answer just in), so a sender being stopped would carry on as if never told.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ssl import SSLContext

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_FRAME_BYTES = 2 * 1024 * 1024
HEAD_BYTES = 64 * 1024
DEFAULT_FRAME_TIMEOUT = 30.0
TLS_HANDSHAKE_SECONDS = 10.0
CLOSE_SECONDS = 5.0  # waiting for a closed transport to finish (a TLS peer that never answers close_notify)

log = logging.getLogger("radloop.hl7.mllp")


class FramingError(Exception):
    """The byte stream cannot be read as MLLP frames; the connection must close."""


@dataclass(frozen=True)
class Oversized:
    """A frame over the size limit: only its head is kept, so the reply can name the message."""

    head: bytes
    size: int


@dataclass(frozen=True)
class Peer:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


Frame = bytes | Oversized
# Gets one complete frame's payload, returns the reply payload (None: no reply).
FrameHandler = Callable[[Frame, Peer], Awaitable[bytes | None]]


def frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK


async def read_frame(
    reader: asyncio.StreamReader, max_frame_bytes: int, frame_timeout: float
) -> Frame | None:
    """The next frame's payload; None on a clean EOF between frames.

    Raises FramingError on unframed junk, a truncated frame or a frame that never ends.
    """
    first = await reader.read(1)
    if not first:
        return None
    if first != START_BLOCK:
        raise FramingError(f"unframed data (first byte 0x{first[0]:02x}, expected 0x0b)")
    try:
        async with asyncio.timeout(frame_timeout):
            return await _frame_body(reader, max_frame_bytes)
    except TimeoutError:
        raise FramingError(f"frame not terminated within {frame_timeout:g}s") from None


async def _frame_body(reader: asyncio.StreamReader, max_frame_bytes: int) -> Frame:
    head = bytearray()
    size = 0
    hard_cap = max(max_frame_bytes * 16, 64 * 1024 * 1024)
    while True:
        try:
            chunk = await reader.readuntil(END_BLOCK)
        except asyncio.IncompleteReadError as err:
            raise FramingError(f"connection closed inside a frame after {size + len(err.partial)} bytes") from None
        except asyncio.LimitOverrunError as err:
            # No terminator within the reader's buffer limit: keep the head, discard the rest.
            chunk = await reader.readexactly(max(1, err.consumed))
            size += len(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            if size > hard_cap:
                raise FramingError(f"frame exceeds {hard_cap} bytes without a terminator") from None
            continue
        body = chunk[: -len(END_BLOCK)]
        size += len(body)
        if size > max_frame_bytes:
            if len(head) < HEAD_BYTES:
                head += body[: HEAD_BYTES - len(head)]
            return Oversized(head=bytes(head), size=size)
        payload = bytes(head) + body
        restart = payload.rfind(START_BLOCK)
        if restart >= 0:
            log.warning("dropping %d bytes of an unterminated frame", restart)
            payload = payload[restart + 1 :]
        return payload


class MLLPServer:
    """Accepts connections and answers each frame in order, one frame at a time per connection."""

    def __init__(
        self,
        handler: FrameHandler,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        frame_timeout: float = DEFAULT_FRAME_TIMEOUT,
    ) -> None:
        self.handler = handler
        self.max_frame_bytes = max_frame_bytes
        self.frame_timeout = frame_timeout
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 0, ssl: SSLContext | None = None) -> int:
        """Listen; returns the bound port (port 0 picks a free one). With `ssl`, MLLP runs inside TLS
        (security.tls); a peer that fails the handshake never reaches the frame reader."""
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=min(self.max_frame_bytes, HEAD_BYTES * 4),
            ssl=ssl, ssl_handshake_timeout=TLS_HANDSHAKE_SECONDS if ssl is not None else None,
        )
        return self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None, "not started"
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing each transport ends its reader with EOF: connections finish their current
        # frame's answer and stop, no task is cancelled mid-write.
        for writer in list(self._connections.values()):
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=CLOSE_SECONDS)
        if self._server is not None:
            # From 3.12 this waits for every connection; one stuck in a handler must not stop a shutdown.
            await asyncio.wait({asyncio.ensure_future(self._server.wait_closed())}, timeout=CLOSE_SECONDS)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        host, port = writer.get_extra_info("peername")[:2]
        peer = Peer(host, port)
        try:
            while True:
                got = await read_frame(reader, self.max_frame_bytes, self.frame_timeout)
                if got is None:
                    break
                reply = await self.handler(got, peer)
                if reply is not None:
                    writer.write(frame(reply))
                    async with asyncio.timeout(self.frame_timeout):  # a peer that never reads its ACKs
                        await writer.drain()
        except FramingError as err:
            log.warning("closing MLLP connection from %s: %s", peer, err)
        except TimeoutError:
            log.warning("closing MLLP connection from %s: it did not read its answer in %gs", peer,
                        self.frame_timeout)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - one connection's failure must not stop the listener
            log.exception("MLLP connection from %s failed", peer)
        finally:
            self._connections.pop(task, None)
            await close_writer(writer)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a connection and wait (bounded) until it is gone; errors of a dying connection are moot."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await writer.wait_closed()
    except (ConnectionError, OSError, TimeoutError):
        pass


class MLLPClient:
    """One connection to an MLLP peer; `send` writes a frame and waits for the answering frame.

    `timeout` bounds each wait: connecting, and one send (write + the whole answer).
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.max_frame_bytes = max_frame_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> MLLPClient:
        async with asyncio.timeout(self.timeout):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=HEAD_BYTES * 4)
        return self

    async def send(self, payload: bytes) -> bytes:
        """Send one message and return the reply's payload (raises FramingError / TimeoutError)."""
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        try:
            async with asyncio.timeout(self.timeout):
                self._writer.write(frame(payload))
                await self._writer.drain()
                reply = await read_frame(self._reader, self.max_frame_bytes, self.timeout)
        except BaseException:
            # Half a frame sent or an answer still due: a late answer must never be read as the next one's.
            if self._writer is not None:
                self._writer.close()
            self._writer = self._reader = None
            raise
        if reply is None:
            raise FramingError("peer closed the connection without answering")
        if isinstance(reply, Oversized):
            raise FramingError(f"reply of {reply.size} bytes exceeds the limit")
        return reply

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            await close_writer(writer)

    async def __aenter__(self) -> MLLPClient:
        return await self.connect()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
