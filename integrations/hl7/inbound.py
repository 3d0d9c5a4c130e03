"""One inbound frame -> log, deduplicate, dispatch by message type, answer with an ACK.

The order of steps is the contract (interfaces.md "AA is sent only after the
message is durable"):
1. read MSH (charset, delimiters); unreadable -> AR, logged, nothing else done;
2. refuse unsupported type/event/version/processing ID -> AR;
3. look up (sender, MSH-10) in the log: a resend gets the stored ACK, nothing else
   (for an accepted new order, once its loop is sure to exist: see 5);
4. parse (once: structure checked against hl7apy's tables, fields split by RadLoop)
   and run the handler, which commits rows / starts or signals the loop before
   returning; content errors -> AE with ERR, "not now" -> AR;
5. store the message with its ACK and timing, then answer; in enhanced mode the
   application ACK MSH-16 asks for is queued for the HIS (integrations.hl7.app_acks).
   A new order's log row is stored with its AA in the order's own transaction
   (context.MessageJournal: one commit per order, not three), before its loop is
   started; if the start then fails the row is amended to the AR actually sent, and
   if the listener dies in between the HIS's resend starts the loop before the
   stored AA is replayed.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from collections.abc import Awaitable, Callable
from typing import Any

from domain.hl7_tables import HL7Message
from domain.tables import utcnow
from integrations.hl7 import log as msglog
from integrations.hl7.ack import (
    FALLBACK_HEADER,
    accept_ack_wanted,
    application_ack_wanted,
    build_ack,
    encode,
    response_code,
)
from integrations.hl7.adt import handle_adt
from integrations.hl7.app_acks import queue_application_ack
from integrations.hl7.audit import received_event
from integrations.hl7.context import InboundContext, MessageJournal, Outcome
from integrations.hl7.mllp import Frame, Oversized, Peer
from integrations.hl7.orders import handle_order, heal_replayed
from integrations.hl7.parse import (
    ErrorCode,
    HL7Reject,
    Issue,
    MessageHeader,
    ParsedMessage,
    check_header,
    decode,
    parse,
    read_header,
)

Handler = Callable[[ParsedMessage, InboundContext, dict[str, Any]], Awaitable[Outcome]]

HANDLERS: dict[str, Handler] = {
    "ADT^A01": handle_adt,
    "ADT^A04": handle_adt,
    "ADT^A08": handle_adt,
    "ADT^A40": handle_adt,
    "ORM^O01": handle_order,
    "OMI^O23": handle_order,
}


def supported_types() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key in HANDLERS:
        kind, event = key.split("^")
        out.setdefault(kind, set()).add(event)
    return out


log = logging.getLogger("radloop.hl7.inbound")


class InboundProcessor:
    """The MLLP server's frame handler: bytes in, ACK bytes out (None: MSH-15 says no ACK)."""

    def __init__(self, ctx: InboundContext) -> None:
        self.ctx = ctx

    async def __call__(self, got: Frame, peer: Peer) -> bytes | None:
        started = time.perf_counter()
        if isinstance(got, Oversized):
            return await self._refuse_unclaimed(
                got.head, got.size, peer, started,
                HL7Reject("AR", [Issue(ErrorCode.internal_error,
                                       f"message of {got.size} bytes exceeds the frame limit")]))
        raw = got
        try:
            header = read_header(raw)
        except HL7Reject as err:
            return await self._refuse_unclaimed(raw, len(raw), peer, started, err)
        try:
            check_header(header, supported_types())
        except HL7Reject as err:
            return await self._refuse_unclaimed(raw, len(raw), peer, started, err, header)

        received_at = utcnow()
        try:
            message_text = decode(raw, header)
        except UnicodeDecodeError:  # read_header decoded the same bytes already
            message_text = ""
        previous = await asyncio.to_thread(msglog.lookup, self.ctx.sessions, header)
        not_now: HL7Reject | None = None
        if previous is not None and previous.ack is not None:
            try:
                if previous.ack_code in ("AA", "CA"):
                    await heal_replayed(previous.summary, self.ctx)  # an accepted order's loop exists first
            except HL7Reject as err:
                not_now = err  # answered AR below, logged without the dedup key: the next resend replays
            else:
                log.info("resend of %s from %s: replaying the stored ACK", header.control_id, header.sender)
                await asyncio.to_thread(msglog.record_duplicate, self.ctx.sessions, header, raw, str(peer), previous)
                self._audit(header, str(peer), "duplicate", previous.ack_code, {}, [], previous.row_id,
                            previous.row_id)
                return previous.ack

        summary: dict[str, Any] = {"message_type": header.type_event}
        journal = MessageJournal(header, raw, str(peer), received_at, started, lambda text: (
            encode(build_ack(header, "AA", [], text), header), response_code("AA", header),
            "AA" if header.application_ack_type else None))
        code, issues, text, transient = "AA", [], "", False
        try:
            if not_now is not None:
                raise not_now
            parsed = parse(message_text, header)
            outcome = await HANDLERS[header.type_event](parsed, replace(self.ctx, journal=journal), summary)
            text = outcome.text
        except HL7Reject as err:
            code, issues, transient = err.ack, err.issues, err.transient
        except Exception as err:  # noqa: BLE001 - a bug or outage must answer, not hang the sender
            log.exception("processing %s %s failed", header.type_event, header.control_id)
            code, transient = "AR", True
            issues = [Issue(ErrorCode.internal_error, f"internal error: {type(err).__name__}: {err}")]
        staged = journal.committed  # the log row already committed with the handler's rows, if any
        as_staged = staged is not None and code == "AA" and text == staged.text
        ack = staged.ack if as_staged else encode(build_ack(header, code, issues, text), header)  # type: ignore
        result = msglog.Outcome(
            status={"AA": "processed", "AE": "error", "AR": "rejected"}[code], ack=ack,
            ack_code=response_code(code, header), summary=summary,  # type: ignore[arg-type]
            error="; ".join(i.text for i in issues) or None,
            processing_ms=(time.perf_counter() - started) * 1000, transient=transient,
            application_ack_code=code if header.application_ack_type else None,
        )
        row_id = f"unlogged-{uuid.uuid4()}"
        try:
            if as_staged:
                row_id = staged.row_id
            elif staged is not None:  # accepted in its transaction, failed after it (the loop did not start)
                row_id = await asyncio.to_thread(msglog.amend, self.ctx.sessions, staged.row_id, result)
            else:
                row_id = await asyncio.to_thread(msglog.record, self.ctx.sessions, header, raw, str(peer),
                                                 received_at, result)
        except Exception:  # noqa: BLE001 - the effect is durable; a resend re-processes safely
            log.exception("could not store %s and its ACK", header.control_id)
        self._audit(header, str(peer), result.status, result.ack_code, summary, [int(i.code) for i in issues], row_id)
        if application_ack_wanted(code, header) and not transient:  # type: ignore[arg-type]
            await self._queue_application_ack(header, code, issues, text, row_id)
        return ack if accept_ack_wanted(code, header) else None  # type: ignore[arg-type]

    def _audit(self, header: MessageHeader | None, peer: str, status: str, ack_code: str | None,
               summary: dict[str, Any], error_codes: list[int], row_id: str, duplicate_of: str | None = None) -> None:
        """Hand the message's audit record to the background writer (PS3.15 110107 Import)."""
        if self.ctx.audit is None:
            return
        row = HL7Message(id=row_id, direction="inbound", raw=b"", peer=peer, status=status, ack_code=ack_code,
                         duplicate_of=duplicate_of, patient_id=summary.get("patient_id"),
                         accession_number=summary.get("accession_number"),
                         placer_order_number=summary.get("placer_order_number"), **msglog.header_fields(header))
        try:
            self.ctx.audit(received_event(row, error_codes))
        except Exception:  # noqa: BLE001 - the ACK must go out; the writer logs its own failures
            log.exception("could not queue the audit record of %s", row.control_id)

    async def _queue_application_ack(self, header: MessageHeader, code: str, issues: list[Issue], text: str,
                                     row_id: str) -> None:
        try:
            app_id = await asyncio.to_thread(queue_application_ack, header, code, issues, text, row_id)
        except Exception:  # noqa: BLE001 - the accept ACK still goes out; the log shows the gap
            log.exception("could not queue the application ACK of %s", header.control_id)
            return
        if self.ctx.application_acks is not None:
            self.ctx.application_acks(app_id)

    async def _refuse_unclaimed(self, raw: bytes, size: int, peer: Peer, started: float, err: HL7Reject,
                                header: MessageHeader | None = None) -> bytes | None:
        """AR/AE for a message refused before it was claimed: logged, nothing else written."""
        if header is None and err.header is not None:
            header = err.header
        elif header is None and raw.lstrip().startswith(b"MSH"):
            try:
                header = read_header(raw)
            except HL7Reject as again:
                header = again.header
        h = header or FALLBACK_HEADER
        ack = encode(build_ack(h, err.ack, err.issues), h)
        row_id = ""
        try:
            row_id = await asyncio.to_thread(msglog.record_unreadable, self.ctx.sessions, raw[:65536], size,
                                             str(peer), header, str(err), ack, response_code(err.ack, h))
        except Exception:  # noqa: BLE001 - answering matters more than logging junk
            log.exception("could not log a refused message")
        self._audit(header, str(peer), "rejected", response_code(err.ack, h), {}, [int(i.code) for i in err.issues],
                    row_id)
        log.info("refused a message from %s in %.1f ms: %s", peer, (time.perf_counter() - started) * 1000, err)
        return ack if accept_ack_wanted(err.ack, h) else None
