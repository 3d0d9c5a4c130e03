"""Writing and searching the HL7 message log (domain.hl7_tables.HL7Message).

Idempotency by (sender, MSH-10): `lookup` reads whether that message was already
answered, before anything is done, and a resend gets the stored ACK back. The
log row itself is written once, with the outcome, just before the ACK is sent
(one write per message, not two: on SQLite every write waits its turn behind the
worker's); an accepted new order's row goes into the order's own transaction
instead (`stage`, through integrations.hl7.context.MessageJournal), amended only
if the loop then fails to start. A crash before that write leaves no row and sends no ACK, so the HIS
resends and the message is processed again, which is safe because every effect
behind it is idempotent (placer number unique, workflow ID from the accession,
cancel validated by the loop, demographics set to what was sent). Two identical
messages racing each other are both processed; the second row is stored as a
duplicate of the first.

The raw message and ACK are sealed on flush (domain.hl7_tables): read them through
`clear_raw` / `clear_ack`. A personal number as first PID-3 is stored masked, with a
blind index that a search by the full number matches (security.field_crypto).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from domain.hl7_tables import HL7Message, clear_ack
from domain.tables import utcnow
from integrations.hl7.parse import MessageHeader
from security.field_crypto import display_identifier, identifier_index, is_sealed, personal_number_indexes

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class Previous:
    row_id: str
    ack: bytes | None
    ack_code: str | None
    summary: dict[str, Any] | None = None


def dedup_key(header: MessageHeader) -> str:
    return f"{header.sender}|{header.control_id}"


def header_fields(header: MessageHeader | None) -> dict[str, Any]:
    """The log columns MSH fills (empty when there was no readable MSH)."""
    if header is None:
        return {}
    return dict(
        control_id=header.control_id, message_type=header.type_event, version=header.version,
        sending_application=header.sending_application, sending_facility=header.sending_facility,
        receiving_application=header.receiving_application, receiving_facility=header.receiving_facility,
        charset=header.charset,
    )


def record_unreadable(sessions: SessionFactory, raw: bytes, size: int, peer: str,
                      header: MessageHeader | None, error: str, ack: bytes, ack_code: str) -> str:
    """A message refused before it was processed (no MSH, bad charset, unsupported, oversized)."""
    row = HL7Message(id=str(uuid.uuid4()), direction="inbound", raw=raw, raw_size=size, peer=peer,
                     status="rejected", error=error, ack_raw=ack, ack_code=ack_code, acked_at=utcnow(),
                     **header_fields(header))
    with sessions() as s:
        s.add(row)
        s.commit()
    return row.id


def lookup(sessions: SessionFactory, header: MessageHeader) -> Previous | None:
    """The first receipt of this (sender, MSH-10), if it was answered for good."""
    with sessions() as s:
        first = s.exec(select(HL7Message).where(HL7Message.dedup_key == dedup_key(header))).first()
        return Previous(first.id, clear_ack(first), first.ack_code, first.summary) if first is not None else None


def record_duplicate(sessions: SessionFactory, header: MessageHeader, raw: bytes, peer: str,
                     previous: Previous) -> None:
    with sessions() as s:
        s.add(HL7Message(id=str(uuid.uuid4()), direction="inbound", duplicate_of=previous.row_id, raw=raw,
                         raw_size=len(raw), peer=peer, status="duplicate", ack_raw=previous.ack,
                         ack_code=previous.ack_code, acked_at=utcnow(), **header_fields(header)))
        s.commit()


@dataclass(frozen=True)
class Outcome:
    status: str  # processed | error | rejected
    ack: bytes
    ack_code: str
    summary: dict[str, Any]
    error: str | None
    processing_ms: float
    transient: bool  # a "not now" refusal: never replayed, the resend is processed
    application_ack_code: str | None = None


def patient_columns(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary as stored, patient columns): a personal-number first PID-3 only masked and blind-indexed."""
    value, system = summary.get("patient_identifier"), summary.get("patient_identifier_system") or "MRN"
    columns: dict[str, Any] = {"patient_id": summary.get("patient_id"), "patient_identifier": value}
    if not value or not is_sealed(system):
        return summary, columns
    display = display_identifier(system, value)
    # Indexed under the bare domain (INSURANCE:<region> -> INSURANCE): a search names no domain.
    columns.update(patient_identifier=display,
                   patient_identifier_bidx=identifier_index(system.split(":", 1)[0], value))
    return {**summary, "patient_identifier": display}, columns


def inbound_row(header: MessageHeader, raw: bytes, peer: str, received_at: datetime, out: Outcome,
                key: str | None, duplicate_of: str | None) -> HL7Message:
    """The log row of a processed message (status `duplicate` when it names the first receipt)."""
    summary, patient = patient_columns(out.summary)
    return HL7Message(
        id=str(uuid.uuid4()), direction="inbound", dedup_key=key, duplicate_of=duplicate_of, raw=raw,
        raw_size=len(raw), peer=peer, summary=summary, status=out.status if duplicate_of is None else "duplicate",
        **patient, accession_number=summary.get("accession_number"),
        placer_order_number=summary.get("placer_order_number"),
        ack_raw=out.ack, ack_code=out.ack_code, application_ack_code=out.application_ack_code,
        error=out.error, received_at=received_at, acked_at=utcnow(), processing_ms=out.processing_ms,
        **header_fields(header),
    )


def stage(session: Session, header: MessageHeader, raw: bytes, peer: str, received_at: datetime,
          out: Outcome) -> str:
    """Add the row of a message accepted inside the caller's transaction (the caller commits): the
    first receipt of its (sender, MSH-10) holds the dedup key, a later one (an identical message
    that raced it and committed first) is stored as its duplicate."""
    key = dedup_key(header)
    first = session.exec(select(HL7Message.id).where(HL7Message.dedup_key == key)).first()
    row = inbound_row(header, raw, peer, received_at, out, None if first else key, first)
    session.add(row)
    return row.id


def amend(sessions: SessionFactory, row_id: str, out: Outcome) -> str:
    """A staged row whose message failed after its transaction (the loop could not be started):
    the row takes the outcome and ACK actually sent; a transient one gives up its dedup key, so the
    resend is processed again."""
    summary, patient = patient_columns(out.summary)
    with sessions() as s:
        row = s.get(HL7Message, row_id)
        if row is None:  # pragma: no cover - staged rows are never deleted
            raise LookupError(f"HL7 log row {row_id} is gone")
        if row.duplicate_of is None:
            row.status = out.status
        if out.transient:
            row.dedup_key = None
        row.summary, row.patient_id = summary, patient["patient_id"]
        row.ack_raw, row.ack_code, row.application_ack_code = out.ack, out.ack_code, out.application_ack_code
        row.error, row.acked_at, row.processing_ms = out.error, utcnow(), out.processing_ms
        s.add(row)
        s.commit()
    return row_id


def record(sessions: SessionFactory, header: MessageHeader, raw: bytes, peer: str, received_at: datetime,
           out: Outcome) -> str:
    """Store a processed message with its ACK; the first of its (sender, MSH-10) holds the dedup key."""

    def row(key: str | None, duplicate_of: str | None) -> HL7Message:
        return inbound_row(header, raw, peer, received_at, out, key, duplicate_of)

    first = row(None if out.transient else dedup_key(header), None)
    with sessions() as s:
        s.add(first)
        try:
            s.commit()
            return first.id
        except IntegrityError:
            s.rollback()  # an identical message raced this one and was stored first
    previous = lookup(sessions, header)
    dup = row(None, previous.row_id if previous else None)
    with sessions() as s:
        s.add(dup)
        s.commit()
    return dup.id


def search(session: Session, *, control_id: str | None = None, patient: str | None = None,
           accession: str | None = None, since: datetime | None = None, until: datetime | None = None,
           direction: str | None = None, limit: int = 100) -> list[HL7Message]:
    """Messages by MSH-10, by patient (RadLoop ID or PID-3 value), by accession, in [since, until), newest first.

    A personal number (ID card, insurance, ...) is matched whole, by its blind index in any personal domain.
    """
    q = select(HL7Message)
    if since:
        q = q.where(HL7Message.received_at >= since)
    if until:
        q = q.where(HL7Message.received_at < until)
    if direction:
        q = q.where(HL7Message.direction == direction)
    if control_id:
        q = q.where(HL7Message.control_id == control_id)
    if patient:
        q = q.where(or_(HL7Message.patient_id == patient, HL7Message.patient_identifier == patient,
                        col(HL7Message.patient_identifier_bidx).in_(personal_number_indexes(patient))))
    if accession:
        q = q.where(HL7Message.accession_number == accession)
    return list(session.exec(q.order_by(col(HL7Message.received_at).desc()).limit(limit)).all())


def outbound_backlog(session: Session, limit: int = 500) -> list[HL7Message]:
    """Outbound messages not yet taken by the HIS, oldest first: what operators watch while it is down."""
    return list(session.exec(
        select(HL7Message).where(HL7Message.direction == "outbound",
                                 col(HL7Message.status).in_(("queued", "pending")))
        .order_by(col(HL7Message.received_at)).limit(limit)).all())
