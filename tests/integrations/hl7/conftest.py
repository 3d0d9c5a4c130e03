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
        return await asyncio.wait_for(connect(address=f"127.0.0.1:{port}"), 2)

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
    """The hospital system's side: stores what it receives and answers with `answer` (AA, AE or AR)."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.answer = "AA"
        self.server = MLLPServer(self)

    async def __call__(self, got: Frame, _peer: Peer) -> bytes:
        assert isinstance(got, bytes)
        self.received.append(got)
        header = read_header(got)
        return encode(build_ack(header, self.answer, text="HIS says " + self.answer), header)  # type: ignore[arg-type]

    def messages(self) -> list[hl7.Message]:
        return [hl7.parse(m.decode("utf-8")) for m in self.received]


@pytest.fixture
async def his(sqlite_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HIS]:
    his = HIS()
    port = await his.server.start("127.0.0.1", 0)
    monkeypatch.setenv("RADLOOP_HIS_MLLP_HOST", "127.0.0.1")
    monkeypatch.setenv("RADLOOP_HIS_MLLP_PORT", str(port))
    monkeypatch.setenv("RADLOOP_HIS_MLLP_TIMEOUT_SECONDS", "2")
    yield his
    await his.server.close()


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
