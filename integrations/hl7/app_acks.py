"""Enhanced mode's application ACKs: queued in the log, delivered to the HIS in order, retried until taken.

In enhanced mode the sender gets the accept ACK (CA/CE/CR) on its own connection
at once, and the application ACK (AA/AE/AR) later, as a message RadLoop sends to
the HIS's listener. No loop owns these messages, so the listener delivers them:
one sender task, first in first out, the head retried with backoff while the HIS
is down (later ACKs wait behind it, so order holds). The rows are written before
delivery starts, so a restarted listener picks up what is still queued (`resume`).
`close` is bounded: it stops the sender even when a delivery swallowed the cancellation
(Python 3.11's `asyncio.wait_for` does when its inner future has just completed).
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from sqlmodel import col, select

from core.db import session_scope
from domain.hl7_tables import HL7Message
from integrations.hl7.ack import build_ack, encode
from integrations.hl7.delivery import DeliveryFailed, HISEndpoint, deliver
from integrations.hl7.parse import Issue, MessageHeader

log = logging.getLogger("radloop.hl7.app_acks")
APP_ACK_TYPE = "ACK (application)"
CLOSE_SECONDS = 5.0


def queue_application_ack(header: MessageHeader, code: str, issues: list[Issue], text: str,
                          inbound_id: str) -> str:
    """Write the application ACK for an inbound message as an outbound row; returns its ID."""
    message_id = f"out-appack-{inbound_id}"
    body = build_ack(header, code, issues, text, application_ack=True)  # type: ignore[arg-type]
    raw = encode(body, header)
    control_id = body.split("\r", 1)[0].split(header.encoding.field)[9]
    his = HISEndpoint.from_settings()
    with session_scope() as s:
        if s.get(HL7Message, message_id) is None:
            s.add(HL7Message(
                id=message_id, direction="outbound", control_id=control_id, message_type=APP_ACK_TYPE,
                version=header.version, sending_application="RADLOOP", receiving_application=his.application,
                receiving_facility=his.facility, charset=header.charset, raw=raw, raw_size=len(raw),
                status="queued", summary={"acknowledges": header.control_id, "code": code},
            ))
    return message_id


class ApplicationAckSender:
    """`deliver_one` sends one queued row (integrations.hl7.delivery.deliver; tests pass their own)."""

    def __init__(self, first_retry_seconds: float = 1.0, max_retry_seconds: float = 300.0,
                 deliver_one: Callable[[str], Awaitable[str]] = deliver) -> None:
        self.first_retry = first_retry_seconds
        self.max_retry = max_retry_seconds
        self._deliver = deliver_one
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"hl7-app-acks-{uuid.uuid4().hex[:6]}")

    def submit(self, message_id: str) -> None:
        self._queue.put_nowait(message_id)

    async def resume(self) -> int:
        """Queue what a previous run left undelivered, oldest first."""
        def pending() -> list[str]:
            with session_scope() as s:
                return list(s.exec(select(HL7Message.id).where(
                    HL7Message.direction == "outbound", HL7Message.message_type == APP_ACK_TYPE,
                    col(HL7Message.status).in_(("queued", "pending"))).order_by(col(HL7Message.received_at))).all())

        ids = await asyncio.to_thread(pending)
        for message_id in ids:
            self.submit(message_id)
        return len(ids)

    async def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Stop sending (what is undelivered stays queued in the log for `resume`); never waits past `timeout`."""
        self._closing = True
        task = self._task
        if task is None:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while not task.done():
            task.cancel()  # again if a delivery swallowed the last one; `_closing` ends the loop regardless
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.error("application ACK sender did not stop within %.0f s; leaving it", timeout)
                return
            await asyncio.wait({task}, timeout=min(left, 0.5))
        if not task.cancelled() and task.exception() is not None:
            log.error("application ACK sender had failed", exc_info=task.exception())

    async def _run(self) -> None:
        while not self._closing:
            message_id = await self._queue.get()
            delay = self.first_retry
            while not self._closing:
                try:
                    await self._deliver(message_id)
                    break
                except DeliveryFailed as err:
                    if not err.retryable:
                        log.warning("application ACK %s refused: %s", message_id, err.reason)
                        break
                    log.info("application ACK %s not delivered (%s); again in %.0f s", message_id, err.reason, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_retry)
                except Exception:  # noqa: BLE001 - a database hiccup must not stop the sender
                    log.exception("delivering application ACK %s failed", message_id)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_retry)
