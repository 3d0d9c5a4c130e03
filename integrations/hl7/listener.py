"""`python -m integrations.hl7.listener`: the HL7 v2 MLLP listener (the launcher starts it).

It comes up even while Temporal is down (the HIS then gets AR "not now" and
resends), connecting on first need and again after a failure, so /health shows
the listener as up and Temporal as the failing part.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal

from temporalio.client import Client

from core.config import get_settings
from core.temporal import connect
from security.startup import refuse_insecure_start
from security.tls import hl7_server_context
from integrations.hl7.app_acks import ApplicationAckSender
from integrations.hl7.audit import HL7Auditor
from integrations.hl7.context import InboundContext
from integrations.hl7.inbound import InboundProcessor
from integrations.hl7.mllp import MLLPServer

log = logging.getLogger("radloop.hl7.listener")
CONNECT_TIMEOUT_SECONDS = 3.0


class TemporalOnDemand:
    """One client, connected on first need; a failed attempt is retried on the next message."""

    def __init__(self) -> None:
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):  # wait_for could swallow a cancel (3.11)
                        self._client = await connect()
        return self._client


def bind_host() -> str:
    """Loopback in development; all interfaces in production, where the HIS is another machine."""
    return "0.0.0.0" if get_settings().is_production else "127.0.0.1"


# Database work runs in threads (asyncio.to_thread); SQLite makes a writer wait for the lock, so
# a few slow commits must not use up the default pool (cpu + 4 threads) and stall every lookup.
DB_THREADS = 32


def use_listener_threads() -> None:
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(DB_THREADS, thread_name_prefix="hl7-db"))


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s hl7 %(levelname)s %(message)s")
    await asyncio.to_thread(refuse_insecure_start, "hl7 listener")  # production: no demo users, no dev keys
    use_listener_threads()
    settings = get_settings()
    app_acks = ApplicationAckSender()
    app_acks.start()
    auditor = HL7Auditor()  # every message received, in the central audit trail (PS3.15 110107)
    server = MLLPServer(InboundProcessor(InboundContext(temporal=TemporalOnDemand(),
                                                        application_acks=app_acks.submit, audit=auditor.submit)),
                        max_frame_bytes=settings.hl7_max_frame_bytes, frame_timeout=settings.hl7_frame_timeout_seconds)
    tls = hl7_server_context(settings)  # MLLP inside TLS when RADLOOP_HL7_TLS_CERT/KEY are set
    port = await server.start(bind_host(), settings.hl7_port, ssl=tls)
    log.info("HL7 MLLP listener on %s:%d%s", bind_host(), port, " (TLS)" if tls else "")
    if resumed := await app_acks.resume():
        log.info("%d application ACK(s) from an earlier run still to deliver", resumed)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping")
    await server.close()
    await app_acks.close()
    await asyncio.to_thread(auditor.flush)


def run() -> None:
    """On uvloop, as the API runs (its socket I/O costs less CPU per message than asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - pinned in requirements.txt; the default loop works too
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


if __name__ == "__main__":
    run()
