"""Writing and searching the HL7 message log (domain.hl7_tables.HL7Message).

`claim` is the idempotency gate: the first receipt of a (sender, MSH-10) takes
the unique dedup key; a resend finds the stored ACK and replays it. A resend of
a message whose first receipt never finished (crash, timeout) is processed again,
which is safe because every effect behind it is idempotent (placer number unique,
workflow ID from the accession, cancel validated by the loop).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from domain.hl7_tables import HL7Message
from domain.tables import utcnow
from integrations.hl7.parse import MessageHeader

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class Claim:
    row_id: str
    replay_ack: bytes | None = None  # set: a finished resend, answer with this and do nothing


def _header_fields(header: MessageHeader | None) -> dict[str, Any]:
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
    """A message refused before it could be claimed (no MSH, bad charset, oversized)."""
    row = HL7Message(id=str(uuid.uuid4()), direction="inbound", raw=raw, raw_size=size, peer=peer,
                     status="rejected", error=error, ack_raw=ack, ack_code=ack_code, acked_at=utcnow(),
                     **_header_fields(header))
    with sessions() as s:
        s.add(row)
        s.commit()
    return row.id


def claim(sessions: SessionFactory, header: MessageHeader, raw: bytes, peer: str) -> Claim:
    key = f"{header.sender}|{header.control_id}"
    row_id = str(uuid.uuid4())
    fields = _header_fields(header)
    with sessions() as s:
        s.add(HL7Message(id=row_id, direction="inbound", dedup_key=key, raw=raw, raw_size=len(raw),
                         peer=peer, **fields))
        try:
            s.commit()
            return Claim(row_id)
        except IntegrityError:
            s.rollback()
    with sessions() as s:
        first = s.exec(select(HL7Message).where(HL7Message.dedup_key == key)).first()
        done = first is not None and first.ack_raw is not None
        s.add(HL7Message(
            id=row_id, direction="inbound", duplicate_of=first.id if first else None, raw=raw,
            raw_size=len(raw), peer=peer, status="duplicate" if done else "received",
            ack_raw=first.ack_raw if done else None, ack_code=first.ack_code if done else None,
            acked_at=utcnow() if done else None, summary=dict(first.summary) if first else {},
            patient_id=first.patient_id if first else None,
            accession_number=first.accession_number if first else None,
            **fields,
        ))
        s.commit()
        return Claim(row_id, first.ack_raw if done and first else None)


def finish(sessions: SessionFactory, row_id: str, *, status: str, ack: bytes | None, ack_code: str,
           summary: dict[str, Any], error: str | None, processing_ms: float, transient: bool,
           application_ack_code: str | None = None) -> None:
    """Store the outcome. A transient refusal frees the dedup key, so the resend is processed."""
    with sessions() as s:
        row = s.get(HL7Message, row_id)
        if row is None:
            return
        row.status, row.ack_raw, row.ack_code, row.error = status, ack, ack_code, error
        row.summary = summary
        row.patient_id = summary.get("patient_id") or row.patient_id
        row.patient_identifier = summary.get("patient_identifier") or row.patient_identifier
        row.accession_number = summary.get("accession_number") or row.accession_number
        row.placer_order_number = summary.get("placer_order_number") or row.placer_order_number
        row.acked_at, row.processing_ms = utcnow(), processing_ms
        row.application_ack_code = application_ack_code
        if transient:
            row.dedup_key = None
        if row.duplicate_of and not transient:
            # A resend that completed an unfinished first receipt: later resends replay this ACK.
            first = s.get(HL7Message, row.duplicate_of)
            if first is not None and first.ack_raw is None:
                first.ack_raw, first.ack_code, first.status = ack, ack_code, status
                s.add(first)
        s.add(row)
        s.commit()


def search(session: Session, *, control_id: str | None = None, patient: str | None = None,
           accession: str | None = None, limit: int = 100) -> list[HL7Message]:
    """Messages by MSH-10, by patient (RadLoop ID or PID-3 value) or by accession, newest first."""
    q = select(HL7Message)
    if control_id:
        q = q.where(HL7Message.control_id == control_id)
    if patient:
        q = q.where(or_(HL7Message.patient_id == patient, HL7Message.patient_identifier == patient))
    if accession:
        q = q.where(HL7Message.accession_number == accession)
    return list(session.exec(q.order_by(col(HL7Message.received_at).desc()).limit(limit)).all())
