"""A new order over MLLP commits patient, order and log row in one transaction (issue 4, paced p99 AA).

The AA is still sent only once the loop exists; what changes is that the log row and its AA are
committed with the order, before the loop starts. So: a loop that cannot start turns the stored AA
into the AR actually sent, and a listener that died between the commit and the start is healed by
the HIS's resend (the loop is started before the stored AA is replayed).
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import event
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RetryConfig

from core.temporal import data_converter
from domain.hl7_tables import HL7Message, clear_ack
from domain.tables import ExamOrder, Patient, PatientIdentifier, utcnow
from integrations.hl7.ack import build_ack, encode
from integrations.hl7.context import InboundContext, MessageJournal
from integrations.hl7.orders import handle_order
from integrations.hl7.parse import HL7Reject, decode, parse, read_header
from tests.integrations.hl7.conftest import free_port, messages, start_listener
from tests.integrations.hl7.messages import ack_fields, orm
from tests.integrations.hl7.test_orders_mllp import center, order_row  # noqa: F401 - the fixture


def gone_after_connect() -> Callable[[], Awaitable[Client]]:
    """Temporal that is reachable "enough" to hand out a client (lazy), then refuses the loop start:
    the real failure of a server that went away between the connect and the start."""
    port = free_port()

    async def get() -> Client:
        return await Client.connect(f"127.0.0.1:{port}", lazy=True, data_converter=data_converter(),
                                    retry_config=RetryConfig(max_retries=0))

    return get


async def test_an_accepted_order_is_one_commit_of_patient_order_and_log_row(center, sqlite_database) -> None:  # noqa: F811
    flushed: dict[int, set[str]] = {}
    committed: list[set[str]] = []

    def after_flush(session, _ctx) -> None:
        flushed.setdefault(id(session), set()).update(type(o).__name__ for o in session.new)

    def after_commit(session) -> None:
        committed.append(flushed.pop(id(session), set()))

    event.listen(Session, "after_flush", after_flush)
    event.listen(Session, "after_commit", after_commit)
    try:
        ack = await center.listener.send(orm("NW", placer="P1C1", control_id="ONE-1").encode())
    finally:
        event.remove(Session, "after_flush", after_flush)
        event.remove(Session, "after_commit", after_commit)
    assert ack_fields(ack)["MSA"][1] == "AA"
    wanted = {Patient.__name__, PatientIdentifier.__name__, ExamOrder.__name__, HL7Message.__name__}
    assert any(wanted <= names for names in committed), committed
    assert not any(HL7Message.__name__ in names for names in committed if not wanted <= names)  # logged once
    logged = messages()[-1]
    assert (logged.status, logged.ack_code, logged.dedup_key) == ("processed", "AA", "HIS|MAIN|ONE-1")
    assert clear_ack(logged) == ack and logged.summary["workflow_id"] == order_row("P1C1").workflow_id


async def test_a_loop_that_cannot_start_after_the_commit_is_an_ar_and_the_resend_is_processed(
        center, sqlite_database, task_queue) -> None:  # noqa: F811
    text = orm("NW", placer="P1C2", control_id="ONE-2").encode()
    broken = await start_listener(InboundContext(temporal=gone_after_connect(), task_queue=task_queue))
    try:
        refused = await broken.send(text)
    finally:
        await broken.server.close()
    assert ack_fields(refused)["MSA"][1] == "AR" and "could not be started" in ack_fields(refused)["MSA"][3]
    stored = messages()[-1]  # the row committed with the order, amended to what was sent
    assert (stored.status, stored.ack_code, stored.dedup_key) == ("rejected", "AR", None)
    assert clear_ack(stored) == refused
    again = await center.listener.send(text)  # the HIS resends: processed, not replayed
    assert ack_fields(again)["MSA"][1] == "AA" and "already known" in ack_fields(again)["MSA"][3]
    desc = await center.env.client.get_workflow_handle(order_row("P1C2").workflow_id).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert [m.status for m in messages() if m.control_id == "ONE-2"] == ["rejected", "processed"]


async def test_a_resend_after_a_crash_between_commit_and_loop_start_starts_the_loop_first(
        center, sqlite_database, task_queue) -> None:  # noqa: F811
    raw = orm("NW", placer="P1C3", control_id="ONE-3").encode()
    header = read_header(raw)
    journal = MessageJournal(header, raw, "127.0.0.1:1", utcnow(), time.perf_counter(), lambda text: (
        encode(build_ack(header, "AA", [], text), header), "AA", None))
    # The handler as the listener runs it, up to the loop start; the listener "dies" there (no amend).
    with pytest.raises(HL7Reject):
        await handle_order(parse(decode(raw, header), header),
                           InboundContext(temporal=gone_after_connect(), task_queue=task_queue, journal=journal),
                           {"message_type": header.type_event})
    assert journal.committed is not None  # order and log row (with its AA) committed, no loop
    row = order_row("P1C3")
    with pytest.raises(Exception):
        await center.env.client.get_workflow_handle(row.workflow_id).describe()
    replayed = await center.listener.send(raw)
    assert replayed == journal.committed.ack  # the stored AA, byte for byte ...
    desc = await center.env.client.get_workflow_handle(row.workflow_id).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING  # ... once the loop exists
    assert [m.status for m in messages() if m.control_id == "ONE-3"] == ["processed", "duplicate"]
