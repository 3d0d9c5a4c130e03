"""HL7 transfers in the central audit trail (R10.5, R4.3.1), with DICOM PS3.15 A.5 event IDs.

- 110107 Import (action C): a message received from a peer, whatever became of it: outcome
  success when it was accepted (AA/CA, or a resend answered with the stored ACK), failure
  when refused (AE/AR, CE/CR) or unreadable; the ERR codes, not their text, are recorded.
- 110106 Export (action R): a message the HIS took (delivered, AA/CA) or refused for good
  (AE/CE); transient failures are retried and show in the outbound backlog instead.

The "who" is the sending application (MSH-3, or RADLOOP outbound) at the peer's address.
Detail holds IDs only (control ID, message type, log row, patient ID, accession), never
names or free text: the full message is in the HL7 log the record points at (`log_id`).
Inbound records go through a background writer, so no ACK waits on the audit store.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.hl7_tables import HL7Message
from security.audit import AuditEvent, AuditTrail
from security.audit_writer import BackgroundAuditWriter


IMPORT, EXPORT = "110107", "110106"
ACCEPTED = {"AA", "CA"}


def _ids(row: HL7Message) -> dict[str, Any]:
    return {"log_id": row.id, "control_id": row.control_id, "message_type": row.message_type,
            "version": row.version, "patient_id": row.patient_id, "accession_number": row.accession_number,
            "placer_order_number": row.placer_order_number}


def received_event(row: HL7Message, error_codes: list[int]) -> AuditEvent:
    """One inbound message, as logged (the row carries the ACK code it was answered with)."""
    accepted = row.ack_code in ACCEPTED or (row.status == "duplicate" and (row.ack_code or "") in ACCEPTED)
    return AuditEvent(
        username=row.sending_application or None, source=row.peer, event_type="hl7_message_received",
        event_id=IMPORT, action="C", object_type="hl7_message", object_id=row.control_id or row.id,
        outcome="success" if accepted else "failure",
        detail={**_ids(row), "direction": "inbound", "sending_facility": row.sending_facility,
                "status": row.status, "ack_code": row.ack_code, "error_codes": error_codes,
                "duplicate_of": row.duplicate_of})


def sent_event(row: HL7Message, peer: str) -> AuditEvent:
    """One outbound message the HIS answered for good (delivered, or refused its content)."""
    return AuditEvent(
        username="RADLOOP", source=peer, event_type="hl7_message_sent", event_id=EXPORT, action="R",
        object_type="hl7_message", object_id=row.control_id or row.id,
        outcome="success" if row.status == "delivered" else "failure",
        detail={**_ids(row), "direction": "outbound", "receiving_application": row.receiving_application,
                "receiving_facility": row.receiving_facility, "status": row.status, "ack_code": row.ack_code,
                "attempts": row.attempts})


def record_sent(row: HL7Message, peer: str) -> None:
    """Synchronous: outbound delivery already runs off any sender's critical path."""
    AuditTrail.from_settings().record(sent_event(row, peer))


class HL7Auditor(BackgroundAuditWriter):
    """Writes inbound audit records on one background thread (the trail spools when the database is down)."""

    def __init__(self, record: Callable[[AuditEvent], Any] | None = None) -> None:
        super().__init__(record or (lambda event: AuditTrail.from_settings().record(event)), "hl7-audit")
