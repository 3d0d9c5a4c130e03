"""HL7 fixtures: the real inbound processor behind a real MLLP server on a free port."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import hl7
import pytest
from sqlmodel import Session, func, select
from temporalio.client import Client

from core.config import reset_settings_cache
from core.db import get_engine
from core.temporal import connect
from domain.hl7_tables import HL7Message
from domain.tables import ExamOrder, Patient
from integrations.hl7.ack import build_ack, encode
from integrations.hl7.context import InboundContext
from integrations.hl7.inbound import InboundProcessor
from integrations.hl7.mllp import Frame, MLLPClient, MLLPServer, Peer
from integrations.hl7.parse import read_header


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def temporal_nowhere() -> Callable[[], Awaitable[Client]]:
    """A Temporal getter aimed at a port nothing listens on: the real "Temporal is down"."""
    port = free_port()

    async def get() -> Client:
        async with asyncio.timeout(2):
            return await connect(address=f"127.0.0.1:{port}")

    return get


@dataclass
class Listener:
    server: MLLPServer

    @property
    def port(self) -> int:
        return self.server.port

    async def send(self, payload: bytes, timeout: float = 20) -> bytes:
        async with MLLPClient("127.0.0.1", self.port, timeout=timeout) as client:
            return await client.send(payload)


async def start_listener(ctx: InboundContext, **kw) -> Listener:
    server = MLLPServer(InboundProcessor(ctx), **kw)
    await server.start("127.0.0.1", 0)
    return Listener(server)


@pytest.fixture
async def offline_listener(sqlite_database: str) -> AsyncIterator[Listener]:
    """The listener with a database but no Temporal: everything up to the loop start is real."""
    listener = await start_listener(InboundContext(temporal=temporal_nowhere()), max_frame_bytes=1024 * 1024)
    yield listener
    await listener.server.close()


@pytest.fixture
async def listener_on_each_database(database: str) -> AsyncIterator[Listener]:
    """`offline_listener` on SQLite and on PostgreSQL, for tests whose subject includes the SQL."""
    listener = await start_listener(InboundContext(temporal=temporal_nowhere()))
    yield listener
    await listener.server.close()


class HIS:
    """The hospital system's side: stores what it receives and answers with `answer` (AA, AE or AR).

    `go_down` / `come_back` point RadLoop's HIS endpoint setting at a port held bound but not
    listening (connections refused, and no other process can take it meanwhile), then at a fresh
    server: reopening the same port after closing it races whatever else binds ports on the machine.
    """

    def __init__(self, env: pytest.MonkeyPatch | None = None) -> None:
        self.received: list[bytes] = []
        self.answer = "AA"
        self.server = MLLPServer(self)
        self._env = env
        self._refusing: socket.socket | None = None

    async def start(self) -> int:
        port = await self.server.start("127.0.0.1", 0)
        self._point_at(port)
        return port

    async def go_down(self) -> None:
        await self.server.close()
        self._refusing = socket.socket()
        self._refusing.bind(("127.0.0.1", 0))  # bound, never listening: every connect is refused
        self._point_at(self._refusing.getsockname()[1])

    async def come_back(self) -> None:
        self.server = MLLPServer(self)
        await self.start()
        if self._refusing is not None:
            self._refusing.close()
            self._refusing = None

    def _point_at(self, port: int) -> None:
        assert self._env is not None, "HIS(env=monkeypatch) to point the settings at it"
        self._env.setenv("RADLOOP_HIS_MLLP_HOST", "127.0.0.1")
        self._env.setenv("RADLOOP_HIS_MLLP_PORT", str(port))
        reset_settings_cache()

    async def __call__(self, got: Frame, _peer: Peer) -> bytes:
        assert isinstance(got, bytes)
        self.received.append(got)
        header = read_header(got)
        return encode(build_ack(header, self.answer, text="HIS says " + self.answer), header)  # type: ignore[arg-type]

    def messages(self) -> list[hl7.Message]:
        return [hl7.parse(m.decode("utf-8")) for m in self.received]


@pytest.fixture
async def his(sqlite_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HIS]:
    monkeypatch.setenv("RADLOOP_HIS_MLLP_TIMEOUT_SECONDS", "2")
    his = HIS(env=monkeypatch)
    await his.start()
    yield his
    await his.server.close()
    if his._refusing is not None:
        his._refusing.close()


def counts() -> dict[str, int]:
    with Session(get_engine()) as s:
        return {
            "orders": s.exec(select(func.count()).select_from(ExamOrder)).one(),
            "patients": s.exec(select(func.count()).select_from(Patient)).one(),
            "messages": s.exec(select(func.count()).select_from(HL7Message)).one(),
        }


def messages() -> list[HL7Message]:
    with Session(get_engine()) as s:
        return list(s.exec(select(HL7Message).order_by(HL7Message.received_at)).all())
