"""What a message handler gets (dependencies as explicit arguments) and what it returns."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlmodel import Session
from temporalio.client import Client

from core.db import get_engine
from security.audit import AuditEvent
from integrations.hl7.parse import ErrorCode, reject


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


@dataclass(frozen=True)
class Outcome:
    """A handled message: the text for MSA-3."""

    text: str = ""


async def temporal_or_not_now(ctx: InboundContext) -> Client:
    """The Temporal client, or AR "not now" (transient: the sender's resend is processed again)."""
    try:
        return await ctx.temporal()
    except Exception as err:  # noqa: BLE001 - any failure to reach Temporal means "not now"
        raise reject("AR", ErrorCode.internal_error, f"the loop engine is not reachable now: {err}",
                     transient=True) from err
