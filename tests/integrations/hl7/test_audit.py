"""HL7 transfers in the central audit trail: 110107 Import per message received, 110106 Export per answer."""
from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import pytest
from sqlmodel import Session, col, select
from temporalio.testing import ActivityEnvironment

from activities.hl7_outbound import Delivery, OrderStatusMessage, deliver_hl7, queue_order_status
from core.config import get_settings
from core.db import get_engine
from domain.orders import OrderIn
from domain.security_tables import AuditRecord
from integrations.hl7.audit import HL7Auditor
from integrations.hl7.context import InboundContext, new_session
from security.audit import AuditTrail, verify_chain
from services.order_intake import record_order
from tests.integrations.hl7.conftest import HIS, Listener, start_listener, temporal_nowhere
from tests.integrations.hl7.messages import ack_fields, msh, orm, pid
from tests.support.loop_driver import order_payload


@pytest.fixture
async def audited(sqlite_database: str) -> AsyncIterator[tuple[Listener, HL7Auditor]]:
    auditor = HL7Auditor(AuditTrail.from_settings().record)
    listener = await start_listener(InboundContext(temporal=temporal_nowhere(), audit=auditor.submit))
    yield listener, auditor
    await listener.server.close()


def records(event_id: str) -> list[AuditRecord]:
    with Session(get_engine()) as s:
        return list(s.exec(select(AuditRecord).where(AuditRecord.event_id == event_id)
                           .order_by(col(AuditRecord.seq))).all())


async def test_every_inbound_message_is_an_import_record(audited) -> None:
    listener, auditor = audited
    a01 = "\r".join([msh("ADT^A01^ADT_A01", "AU-1"), pid("M-AU1")]).encode()
    assert ack_fields(await listener.send(a01))["MSA"][1] == "AA"
    assert ack_fields(await listener.send(a01))["MSA"][1] == "AA"  # the resend: the stored ACK
    refused = await listener.send(orm(control_id="AU-2", code="CT-NOSUCH").encode())
    assert ack_fields(refused)["MSA"][1] == "AE"
    assert ack_fields(await listener.send(b"PID|1||junk"))["MSA"][1] == "AR"
    assert auditor.flush()
    got = records("110107")
    assert [(r.object_id, r.outcome, r.detail["status"]) for r in got] == [
        ("AU-1", "success", "processed"), ("AU-1", "success", "duplicate"), ("AU-2", "failure", "error"),
        (got[3].object_id, "failure", "rejected")]
    first = got[0]
    assert first.event_type == "hl7_message_received" and first.action == "C" and first.username == "HIS"
    assert first.detail["message_type"] == "ADT^A01" and first.detail["patient_id"] and first.detail["log_id"]
    assert got[1].detail["duplicate_of"] == first.detail["log_id"]
    assert got[2].detail["error_codes"] == [103] and "CT-NOSUCH" not in str(got[2].detail)
    assert "张" not in str([r.detail for r in got]), "no names in the audit trail"
    with Session(get_engine()) as s:
        assert verify_chain(s, get_settings().audit_checkpoint_keys).ok


async def run(fn, arg):
    result = ActivityEnvironment().run(fn, arg)
    return await result if inspect.isawaitable(result) else result


async def test_outbound_answers_are_export_records(his: HIS) -> None:
    order = record_order(new_session, OrderIn.model_validate(order_payload())).order
    ids = [await run(queue_order_status, OrderStatusMessage(accession_number=order.accession_number, status=s, seq=n))
           for n, s in enumerate(["scheduled", "cancelled"])]
    assert await run(deliver_hl7, Delivery(message_id=ids[0])) == "delivered"
    his.answer = "AE"
    with pytest.raises(Exception):
        await run(deliver_hl7, Delivery(message_id=ids[1]))
    got = records("110106")
    assert [(r.outcome, r.detail["status"], r.detail["ack_code"]) for r in got] == [
        ("success", "delivered", "AA"), ("failure", "error", "AE")]
    assert got[0].action == "R" and got[0].detail["accession_number"] == order.accession_number
    assert got[0].source.startswith("127.0.0.1:")
