"""Run exam-loop updates from pynetdicom's handler threads.

pynetdicom calls handlers synchronously on one thread per association, while the
Temporal client is asyncio. The bridge owns (or borrows) an event loop and runs
each update there with `run_coroutine_threadsafe`, so a handler can simply call
`bridge.record_exam_event(...)` and get the loop's answer or a
`services.errors.LoopError`.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from domain.loop import ActionAck, ExamEvent, ImagesReceived

if TYPE_CHECKING:  # the Temporal SDK (~20 MB) is imported on the first MPPS, not at start
    from temporalio.client import Client

T = TypeVar("T")

UPDATE_TIMEOUT_SECONDS = 30.0


class LoopBridge:
    """Lazily connected Temporal client plus the event loop its calls run on."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Client]],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._connect = connect
        self._client: Client | None = None
        self._client_lock: asyncio.Lock | None = None
        self._thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="dicom-loop-bridge", daemon=True)
            self._thread.start()
        self._loop = loop

    @classmethod
    def for_client(cls, client: Client, loop: asyncio.AbstractEventLoop) -> LoopBridge:
        """Use an existing client on the loop it belongs to (tests, embedding)."""

        async def same() -> Client:
            return client

        return cls(same, loop)

    async def _client_now(self) -> Client:
        if self._client is None:
            if self._client_lock is None:
                self._client_lock = asyncio.Lock()
            async with self._client_lock:
                if self._client is None:
                    self._client = await self._connect()
        return self._client

    def _run(self, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        async def call() -> T:
            return await make(await self._client_now())

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return future.result(timeout=UPDATE_TIMEOUT_SECONDS)

    def record_exam_event(self, accession: str, event: ExamEvent, update_id: str | None = None) -> ActionAck:
        """The loop's answer, or `LoopError` (NotFound / Conflict / Forbidden / Invalid).

        The same `update_id` again (a retried MPPS, a replay) gets the first answer, not a second step.
        """
        from services import loop_commands

        return self._run(lambda c: loop_commands.record_exam_event(c, accession, event, update_id))

    def images_received(self, accession: str, info: ImagesReceived) -> ActionAck:
        """The loop's answer, or `LoopError` (e.g. Conflict: patient not checked in)."""
        from services import loop_commands

        return self._run(lambda c: loop_commands.images_received(c, accession, info))

    def close(self) -> None:
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
