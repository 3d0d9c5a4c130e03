"""ADT^A40 merges over a real socket, the refusals, and unmerge within the window."""
from __future__ import annotations

import asyncio
from datetime import timedelta, timezone

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.empi_tables import PatientMerge
from domain.orders import OrderIn
from domain.hl7_tables import HL7Message
from domain.tables import DomainEvent, ExamOrder, Patient, PatientIdentifier
from integrations.hl7.context import new_session
from services.errors import Conflict
from services.order_intake import record_order
from services.patient_merge import UNMERGE_WINDOW, resolve, unmerge
from tests.integrations.hl7.messages import ack_fields, msh, pid, seg
from temporalio.testing import WorkflowEnvironment

from domain.loop import exam_loop_workflow_id
from domain.order_changes import PatientMerged
from services.order_changes import follow_merge
from domain.search_attributes import SA_PATIENT
from integrations.hl7.context import InboundContext
from tests.integrations.hl7.conftest import start_listener, temporal_nowhere
from tests.support.loop_driver import LoopDriver, order_payload
from worker import build_worker


def a01(control_id: str, mrn: str, name: str) -> bytes:
    return "\r".join([msh("ADT^A01^ADT_A01", control_id), pid(mrn, name=name)]).encode()


def a40(control_id: str, surviving_mrn: str, merged_mrn: str) -> bytes:
    return "\r".join([msh("ADT^A40^ADT_A39", control_id), pid(surviving_mrn, name="张^三"),
                      seg("MRG", {1: f"{merged_mrn}^^^MRN^MR"})]).encode()


def owner(mrn: str) -> str:
    with Session(get_engine()) as s:
        return s.exec(select(PatientIdentifier).where(PatientIdentifier.value == mrn)).one().patient_id


def merges() -> list[PatientMerge]:
    with Session(get_engine()) as s:
        return list(s.exec(select(PatientMerge)).all())


async def send(listener, payload: bytes) -> tuple[str, str]:
    ack = await listener.send(payload)
    fields = ack_fields(ack)
    return fields["MSA"][1], ack.decode()


@pytest.fixture
async def merge_center(database: str, ts_env: WorkflowEnvironment, task_queue: str):
    """The listener with the real worker behind it (time-skipping Temporal), on SQLite and PostgreSQL."""
    async def client():
        return ts_env.client

    listener = await start_listener(InboundContext(temporal=client, task_queue=task_queue))
    async with build_worker(ts_env.client, task_queue):
        yield listener, LoopDriver(ts_env.client, task_queue)
    await listener.server.close()


@pytest.fixture
async def two_patients(merge_center):
    listener, driver = merge_center
    await listener.send(a01("R-A", "M-A", "张^三"))
    await listener.send(a01("R-B", "M-B", "张^叁"))
    ids = owner("M-A"), owner("M-B")
    # B's order runs a real loop: the merge must reach it.
    placed = await driver.place(patient={
        "identifiers": [{"system": "MRN", "value": "M-B"}], "name": "张叁", "sex": "M", "birth_date": "1970-05-01"})
    return listener, ids, placed


async def loop_patient(env: WorkflowEnvironment, accession: str) -> str | None:
    described = await env.client.get_workflow_handle(exam_loop_workflow_id(accession)).describe()
    return described.typed_search_attributes.get(SA_PATIENT)


async def test_a40_moves_identifiers_and_orders_to_the_survivor(two_patients) -> None:
    listener, (a, b), placed = two_patients
    code, text = await send(listener, a40("M-1", "M-A", "M-B"))
    assert code == "AA", text
    assert owner("M-B") == a
    with Session(get_engine()) as s:
        assert s.get(Patient, b).merged_into == a and resolve(s, b) == a
        assert s.get(ExamOrder, placed.accession_number).patient_id == a
        event = s.get(DomainEvent, f"merge/{merges()[0].id}/{placed.accession_number}")
        assert event is not None and event.kind == "patient_merged"
    (record,) = merges()
    assert (record.surviving_id, record.merged_id, record.actor) == (a, b, "his:HIS")
    assert record.moved["orders"] == [placed.accession_number]
    # A new order for the old MRN lands on the survivor.
    later = OrderIn.model_validate(order_payload(patient={
        "identifiers": [{"system": "MRN", "value": "M-B"}], "name": "张叁", "sex": "M", "birth_date": "1970-05-01"}))
    assert (await asyncio.to_thread(record_order, new_session, later)).order.patient_id == a


async def test_resent_a40_is_a_no_op_and_wrong_merges_are_refused(two_patients) -> None:
    listener, (a, b), _placed = two_patients
    assert (await send(listener, a40("M-1", "M-A", "M-B")))[0] == "AA"
    code, text = await send(listener, a40("M-2", "M-A", "M-B"))  # new control ID, same merge
    assert code == "AA" and "already merged" in text and len(merges()) == 1
    code, text = await send(listener, a40("M-3", "M-B", "M-A"))
    assert code == "AE" and "inverse" in text
    code, text = await send(listener, a40("M-4", "M-A", "M-A"))
    assert code == "AE" and "into itself" in text
    await listener.send(a01("R-C", "M-C", "李^四"))
    code, text = await send(listener, a40("M-5", "M-B", "M-C"))
    assert code == "AE" and "merge into that ID" in text  # B was merged away: not a survivor
    code, text = await send(listener, a40("M-6", "M-C", "M-B"))
    assert code == "AE" and "already merged into" in text
    code, text = await send(listener, a40("M-7", "M-A", "NOBODY"))
    assert code == "AE" and "204^" in text
    assert len(merges()) == 1 and owner("M-C") != a


async def test_unmerge_puts_back_exactly_what_moved_within_the_window(two_patients) -> None:
    listener, (a, b), placed = two_patients
    await send(listener, a40("M-1", "M-A", "M-B"))
    (record,) = merges()
    merged_at = record.merged_at.replace(tzinfo=record.merged_at.tzinfo or timezone.utc)  # SQLite reads naive
    with pytest.raises(Conflict, match="no longer be undone"):
        unmerge(new_session, record.id, "u-registrar", now=merged_at + UNMERGE_WINDOW + timedelta(minutes=1))
    unmerge(new_session, record.id, "u-registrar")
    assert owner("M-B") == b and owner("M-A") == a
    with Session(get_engine()) as s:
        assert s.get(Patient, b).merged_into is None
        assert s.get(ExamOrder, placed.accession_number).patient_id == b
        assert s.get(PatientMerge, record.id).state == "unmerged"
    with pytest.raises(Conflict, match="already undone"):
        unmerge(new_session, record.id, "u-registrar")
    # Once undone, the same A40 may be sent again and merges again.
    assert (await send(listener, a40("M-9", "M-A", "M-B")))[0] == "AA" and owner("M-B") == a


async def test_a40_moves_the_open_loop_to_the_surviving_patient(two_patients, ts_env) -> None:
    listener, (a, b), placed = two_patients
    assert await loop_patient(ts_env, placed.accession_number) == b
    code, text = await send(listener, a40("M-L1", "M-A", "M-B"))
    assert code == "AA", text
    # The AA came after the loop took the new ID: its PatientId search attribute already says A.
    assert await loop_patient(ts_env, placed.accession_number) == a
    with Session(get_engine()) as s:
        logged = [m for m in s.exec(select(HL7Message).where(HL7Message.control_id == "M-L1")).all()]
    assert logged[0].summary["loops_followed"] == [placed.accession_number]
    # Sent again (say the HIS never saw the AA): AA, and the loop is told again, harmlessly.
    code, _ = await send(listener, a40("M-L2", "M-A", "M-B"))
    assert code == "AA" and await loop_patient(ts_env, placed.accession_number) == a
    # A merge that names some other patient is refused by the loop's validator, before any history.
    stray = PatientMerged(merge_id="m-x", from_patient_id="someone", to_patient_id="else", actor="test")
    result = await follow_merge(ts_env.client, [placed.accession_number], stray)
    assert result.followed == [] and "not someone" in result.failed[placed.accession_number]
    assert await loop_patient(ts_env, placed.accession_number) == a
    # Undone (as POST /api/v1/empi/merges/{id}/undo does): the loop goes back to B.
    undone = unmerge(new_session, merges()[0].id, "u-registrar")
    back = await follow_merge(ts_env.client, undone.open_accessions, PatientMerged(
        merge_id=undone.merge_id, from_patient_id=a, to_patient_id=b, actor="u-registrar", undone=True))
    assert back.followed == [placed.accession_number] and await loop_patient(ts_env, placed.accession_number) == b


async def test_a40_while_temporal_is_down_is_ar_and_merges_nothing(two_patients) -> None:
    listener, (a, b), _placed = two_patients
    down = await start_listener(InboundContext(temporal=temporal_nowhere()))
    try:
        code, text = await send(down, a40("M-D1", "M-A", "M-B"))
    finally:
        await down.server.close()
    assert code == "AR" and "207^" in text
    assert merges() == [] and owner("M-B") == b
    # The resend, once Temporal is back, merges and moves the loop.
    assert (await send(listener, a40("M-D1", "M-A", "M-B")))[0] == "AA" and owner("M-B") == a
