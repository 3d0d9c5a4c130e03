"""ORM/OMI over real sockets into real loops (time-skipping Temporal, the real worker)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import hl7
import pytest
from hl7.mllp import open_hl7_connection
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from core.db import get_engine
from domain.hl7_tables import clear_raw
from domain.tables import ExamOrder, Patient
from integrations.hl7 import log as msglog
from integrations.hl7.context import InboundContext
from tests.integrations.hl7.conftest import Listener, counts, messages, start_listener
from tests.integrations.hl7.messages import ack_fields, msh, orm, pid, seg
from tests.support.loop_driver import LoopDriver, settle
from worker import build_worker


@dataclass
class Center:
    env: WorkflowEnvironment
    listener: Listener
    driver: LoopDriver


@pytest.fixture
async def center(request: pytest.FixtureRequest, ts_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Center]:
    for db in ("database", "sqlite_database"):  # set up first, so torn down after the worker: loops never lose their tables
        if db in request.fixturenames:
            request.getfixturevalue(db)

    async def client():
        return ts_env.client

    listener = await start_listener(InboundContext(temporal=client, task_queue=task_queue))
    async with build_worker(ts_env.client, task_queue):
        yield Center(ts_env, listener, LoopDriver(ts_env.client, task_queue))
        await settle()
    await listener.server.close()


def order_row(placer: str) -> ExamOrder:
    with Session(get_engine()) as s:
        row = s.exec(select(ExamOrder).where(ExamOrder.placer_order_number == placer)).one()
        return row


def accession_of(ack: bytes, codec: str = "utf-8") -> str:
    text = ack_fields(ack, codec)["MSA"][3]
    return text.rsplit(" ", 1)[-1]


async def test_new_order_over_the_hl7_package_client_is_acked_once_the_loop_exists(center, database) -> None:
    text = orm("NW", placer="PNW1", control_id="NW-0001")
    reader, writer = await open_hl7_connection("127.0.0.1", center.listener.port, encoding="utf-8")
    writer.writemessage(hl7.parse(text))
    await writer.drain()
    ack = await asyncio.wait_for(reader.readmessage(), 20)
    # The moment the AA arrives, the loop is already running and the rows are committed.
    row = order_row("PNW1")
    desc = await center.env.client.get_workflow_handle(row.workflow_id).describe()
    writer.close()
    assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "NW-0001"
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert row.accession_number in str(ack.segment("MSA")[3])
    assert (row.modality, row.body_part, row.procedure_code, row.priority) == ("CT", "CHEST", "CT-CHEST", "routine")
    assert (row.ordering_clinician_id, row.ordering_clinician_name, row.ordering_department) == \
        ("D001", "孙医生", "呼吸内科")
    assert (row.clinical_history, row.clinical_diagnosis, row.clinical_purpose) == ("咳嗽两周", "肺炎", "排除肺部感染")
    with Session(get_engine()) as s:
        assert s.get(Patient, row.patient_id).name == "张三"
    logged = messages()[-1]
    assert (logged.status, logged.ack_code, logged.accession_number, logged.patient_id) == \
        ("processed", "AA", row.accession_number, row.patient_id)
    assert logged.processing_ms is not None and clear_raw(logged).decode() == text + "\r"


async def test_resend_with_the_same_control_id_replays_the_ack_and_changes_nothing(center, sqlite_database) -> None:
    text = orm("NW", placer="PDUP1", control_id="DUP-0001").encode()
    first = await center.listener.send(text)
    before = counts()
    again = await center.listener.send(text)
    assert again == first  # byte for byte, including the ACK's own control ID
    assert counts() == {**before, "messages": before["messages"] + 1}
    rows = [m for m in messages() if m.control_id == "DUP-0001"]
    assert [r.status for r in rows] == ["processed", "duplicate"] and rows[1].duplicate_of == rows[0].id
    # A new control ID for a known placer number maps to the same loop.
    third = await center.listener.send(orm("NW", placer="PDUP1", control_id="DUP-0002").encode())
    assert ack_fields(third)["MSA"][1] == "AA" and accession_of(third) == accession_of(first)
    assert counts()["orders"] == 1


async def test_cancel_runs_the_loops_cancel_saga(center, sqlite_database) -> None:
    ack = await center.listener.send(orm("NW", placer="PCA1", control_id="CA-0001").encode())
    accession = accession_of(ack)
    await center.driver.wait_step(accession, "scheduled")
    cancel = await center.listener.send(orm("CA", placer="PCA1", control_id="CA-0002",
                                            orc_extra={16: "^patient declined"}).encode())
    assert ack_fields(cancel)["MSA"][1] == "AA", cancel
    status = await center.driver.wait_step(accession, "cancelled")
    assert status.cancelled
    with Session(get_engine()) as s:
        assert s.get(ExamOrder, accession).status == "cancelled"
    # Cancelling again is answered AA (nothing left to do); an unknown order is AE 204.
    again = await center.listener.send(orm("CA", placer="PCA1", control_id="CA-0003").encode())
    assert ack_fields(again)["MSA"][1] == "AA"
    unknown = await center.listener.send(orm("CA", placer="NOPE", control_id="CA-0004").encode())
    assert ack_fields(unknown)["MSA"][1] == "AE" and "204^" in unknown.decode()


async def test_cancel_after_the_exam_started_is_ae(center, sqlite_database) -> None:
    ack = await center.listener.send(orm("NW", placer="PCA2", control_id="CA-0101").encode())
    accession = accession_of(ack)
    await center.driver.check_in(accession)
    await center.driver.perform_exam(accession)
    await center.driver.wait_step(accession, "image_qc")
    late = await center.listener.send(orm("CA", placer="PCA2", control_id="CA-0102").encode())
    assert ack_fields(late)["MSA"][1] == "AE" and "206^" in late.decode() and "cannot cancel" in late.decode()


def _gb18030_pipe_char() -> str:
    """A Chinese character whose GB18030 bytes contain '|' (0x7C): splitting bytes would break it."""
    for code in range(0x4E00, 0x9FFF):
        if b"|" in chr(code).encode("gb18030"):
            return chr(code)
    raise AssertionError("no such character")


@pytest.mark.parametrize("charset,codec", [("GB18030", "gb18030"), ("UNICODE UTF-8", "utf-8")])
async def test_chinese_names_round_trip(center, sqlite_database, charset: str, codec: str) -> None:
    tricky = _gb18030_pipe_char()
    family, given = "欧阳", f"娜{tricky}"
    text = orm("NW", placer=f"PCN-{codec}", control_id=f"CN-{codec}", charset=charset, name=f"{family}^{given}")
    ack = await center.listener.send(text.encode(codec))
    fields = ack_fields(ack, codec)
    assert fields["MSA"][1] == "AA" and fields["MSH"][18] == charset
    row = order_row(f"PCN-{codec}")
    with Session(get_engine()) as s:
        assert s.get(Patient, row.patient_id).name == f"{family}{given}"
    assert row.ordering_clinician_name == "孙医生"


async def test_omi_o23_takes_the_modality_from_ipc(center, sqlite_database) -> None:
    placer = "POMI1"
    lines = [
        msh("OMI^O23^OMI_O23", "OMI-0001", "2.5.1"),
        pid("MRN-OMI-1"),
        seg("ORC", {1: "NW", 2: f"{placer}^HIS", 12: "D001^孙^医生", 17: "respiratory"}),
        seg("TQ1", {1: "1", 9: "S"}),
        seg("OBR", {1: "1", 2: f"{placer}^HIS", 4: "MR-BRAIN^头颅MR平扫", 15: "^^^HEAD", 31: "^排除脑梗"}),
        seg("DG1", {1: "1", 3: "I63.9^脑梗死^I10"}),
        seg("IPC", {1: "ACC-EXT-1", 2: "RP1", 3: "1.2.3.4", 4: "SPS1", 5: "MR"}),
    ]
    ack = await center.listener.send("\r".join(lines).encode())
    assert ack_fields(ack)["MSA"][1] == "AA", ack
    row = order_row(placer)
    assert (row.modality, row.priority, row.body_part) == ("MR", "stat", "HEAD")
    assert messages()[-1].summary["scheduled_steps"] == ["SPS1"]


async def test_an_order_placed_through_the_intake_service_is_the_same_loop_over_hl7(center, sqlite_database) -> None:
    placed = await center.driver.place(placer_order_number="PSHARED1", placer_system="HIS")
    ack = await center.listener.send(orm("NW", placer="PSHARED1", control_id="SH-0001").encode())
    assert accession_of(ack) == placed.accession_number
    assert counts()["orders"] == 1
    # And the log finds it by control ID, by patient and by accession (the loop, running meanwhile,
    # may already have queued its outbound order-status message for the same accession).
    def inbound(found: list) -> list[str]:
        return [m.control_id for m in found if m.direction == "inbound"]

    with Session(get_engine()) as s:
        assert inbound(msglog.search(s, accession=placed.accession_number)) == ["SH-0001"]
        assert inbound(msglog.search(s, control_id="SH-0001")) == ["SH-0001"]
        assert inbound(msglog.search(s, patient=placed.patient_id)) == ["SH-0001"]
        hl7_mrn = [m for m in messages() if m.direction == "inbound"][-1].patient_identifier
        assert hl7_mrn and inbound(msglog.search(s, patient=hl7_mrn)) == ["SH-0001"]


async def test_concurrent_orders_for_one_new_patient_make_one_patient(center, sqlite_database) -> None:
    sends = [center.listener.send(orm("NW", placer=f"PCON{n}", mrn="MRN-CONC", control_id=f"CON-{n}").encode())
             for n in range(8)]
    acks = await asyncio.gather(*sends)
    assert {ack_fields(a)["MSA"][1] for a in acks} == {"AA"}
    assert counts()["orders"] == 8 and counts()["patients"] == 1
