"""What a message handler gets (dependencies as explicit arguments) and what it returns."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlmodel import Session
from temporalio.client import Client

from core.db import get_engine
from security.audit import AuditEvent
from integrations.hl7 import log as msglog
from integrations.hl7.parse import ErrorCode, MessageHeader, reject


SessionFactory = Callable[[], AbstractContextManager[Session]]


def new_session() -> Session:
    """A session whose objects stay readable after commit (handlers return rows)."""
    return Session(get_engine(), expire_on_commit=False)


@dataclass(frozen=True)
class InboundContext:
    # Returns the Temporal client or raises: the listener stays up while Temporal is down.
    temporal: Callable[[], Awaitable[Client]]
    sessions: SessionFactory = new_session
    task_queue: str | None = None  # None: the settings' loop task queue
    # Hands a queued enhanced-mode application ACK to its sender (integrations.hl7.app_acks); None: queued only.
    application_acks: Callable[[str], None] | None = None
    # Takes each message's audit record without blocking (integrations.hl7.audit.HL7Auditor.submit); None: not audited.
    audit: Callable[[AuditEvent], None] | None = None
    # This message's log row, for a handler that writes it in its own transaction (an accepted order);
    # set per message by the inbound processor (dataclasses.replace), None otherwise.
    journal: MessageJournal | None = None


@dataclass(frozen=True)
class Outcome:
    """A handled message: the text for MSA-3."""

    text: str = ""


@dataclass(frozen=True)
class Staged:
    """A log row committed with the handler's own rows, holding the ACK for `text`."""

    row_id: str
    text: str
    ack: bytes


class MessageJournal:
    """One inbound message's log row, for a handler that can write it in its own transaction.

    An accepted order then takes one commit (patient, order and log row together), not two: on
    SQLite every commit waits its turn behind the worker's writes. `stage` adds the row with the AA
    the message will be answered with; the row counts only once that transaction commits (a
    rolled-back attempt leaves nothing staged). The inbound processor sends the staged ACK, or
    amends the row when the message failed after all (integrations.hl7.log.amend).
    """

    def __init__(self, header: MessageHeader, raw: bytes, peer: str, received_at: datetime, started: float,
                 accepted: Callable[[str], tuple[bytes, str, str | None]]) -> None:
        self.header, self.raw, self.peer, self.received_at, self.started = header, raw, peer, received_at, started
        self._accepted = accepted  # MSA-3 text -> (ACK bytes, ACK code, application ACK code)
        self.committed: Staged | None = None

    def stage(self, session: Session, text: str, summary: dict[str, Any]) -> None:
        ack, ack_code, app_code = self._accepted(text)
        out = msglog.Outcome(status="processed", ack=ack, ack_code=ack_code, summary=dict(summary), error=None,
                             processing_ms=(time.perf_counter() - self.started) * 1000, transient=False,
                             application_ack_code=app_code)
        staged = Staged(msglog.stage(session, self.header, self.raw, self.peer, self.received_at, out), text, ack)

        def committed(_session: Session) -> None:
            self.committed = staged

        event.listen(session, "after_commit", committed, once=True)


async def temporal_or_not_now(ctx: InboundContext) -> Client:
    """The Temporal client, or AR "not now" (transient: the sender's resend is processed again)."""
    try:
        return await ctx.temporal()
    except Exception as err:  # noqa: BLE001 - any failure to reach Temporal means "not now"
        raise reject("AR", ErrorCode.internal_error, f"the loop engine is not reachable now: {err}",
                     transient=True) from err
