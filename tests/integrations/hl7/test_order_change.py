"""ORC-1 XO over a real socket into real loops: applied before the exam, refused (AE/CE) after it."""
from __future__ import annotations

import asyncio

from sqlmodel import Session, select

from core.db import get_engine
from domain.enums import Role
from domain.loop import exam_loop_workflow_id
from domain.tables import DomainEvent, HumanTask, WorklistEntry
from tests.integrations.hl7.messages import ack_fields, err_segments, orm
from tests.integrations.hl7.test_orders_mllp import accession_of, center, order_row  # noqa: F401 - fixture

__all__ = ["center"]


def events(accession: str, kind: str) -> list[DomainEvent]:
    with Session(get_engine()) as s:
        return list(s.exec(select(DomainEvent).where(DomainEvent.accession_number == accession,
                                                     DomainEvent.kind == kind)).all())


async def test_xo_before_the_exam_changes_the_order_and_its_worklist_step(center, sqlite_database) -> None:
    ack = await center.listener.send(orm("NW", placer="PXO1", control_id="XO-0001").encode())
    accession = accession_of(ack)
    await center.driver.wait_step(accession, "scheduled")
    change = orm("XO", placer="PXO1", control_id="XO-0002", obr_extra={4: "CT-CHEST-C^胸部CT增强", 31: "^排除肺栓塞"})
    ack = await center.listener.send(change.encode())
    fields = ack_fields(ack)
    assert fields["MSA"][1] == "AA", ack
    assert "clinical_purpose" in fields["MSA"][3] and "procedure_code" in fields["MSA"][3]
    row = order_row("PXO1")
    assert (row.procedure_code, row.procedure_name, row.clinical_purpose) == ("CT-CHEST-C", "胸部CT增强", "排除肺栓塞")
    (event,) = events(accession, "order_changed")
    assert event.detail["changes"]["procedure_code"] == ["CT-CHEST", "CT-CHEST-C"]
    assert event.actor == "his:HIS" and event.detail["source"] == "hl7:HIS:XO-0002"
    with Session(get_engine()) as s:
        entries = s.exec(select(WorklistEntry).where(WorklistEntry.accession_number == accession)).all()
    assert entries and {e.procedure_code for e in entries} == {"CT-CHEST-C"}
    # The same content again: nothing to change, still AA, no second event.
    again = await center.listener.send(change.replace("XO-0002", "XO-0003").encode())
    assert ack_fields(again)["MSA"][1] == "AA" and "unchanged" in ack_fields(again)["MSA"][3]
    assert len(events(accession, "order_changed")) == 1


async def test_xo_after_the_exam_started_opens_a_task_and_changes_nothing(center, sqlite_database) -> None:
    ack = await center.listener.send(orm("NW", placer="PXO2", control_id="XO-0101").encode())
    accession = accession_of(ack)
    await center.driver.check_in(accession)
    await center.driver.perform_exam(accession)
    await center.driver.wait_step(accession, "image_qc")
    late = await center.listener.send(
        orm("XO", placer="PXO2", control_id="XO-0102", obr_extra={31: "^too late"}).encode())
    assert ack_fields(late)["MSA"][1] == "AA", late
    assert "went to a person" in ack_fields(late)["MSA"][3]
    # What was done is not rewritten: the row keeps its values; a radiologist or registrar decides.
    assert order_row("PXO2").clinical_purpose == "排除肺部感染" and not events(accession, "order_changed")
    (requested,) = events(accession, "order_change_requested")
    assert "clinical_purpose" in requested.summary
    task_id = await center.driver.wait_task(exam_loop_workflow_id(accession), "order_change_review")
    with Session(get_engine()) as s:
        row = s.get(HumanTask, task_id)
        assert row is not None and row.state == "open" and "radiologist" in row.roles
        assert row.context["changes"]["clinical_purpose"] == "too late"
    await center.driver.complete(accession, "order_change_review", Role.radiologist,
                                 {"decision": "amend_report", "comment": "purpose noted in the report"})
    for _ in range(200):
        if events(accession, "order_change_reviewed"):
            break
        await asyncio.sleep(0.1)
    (reviewed,) = events(accession, "order_change_reviewed")
    assert reviewed.summary.startswith("amend_report") and reviewed.actor == "u-radiologist"


async def test_xo_refusals_name_the_field(center, sqlite_database) -> None:
    ack = await center.listener.send(orm("NW", placer="PXO3", control_id="XO-0201").encode())
    assert ack_fields(ack)["MSA"][1] == "AA"
    cases = [
        (orm("XO", placer="PXO3", control_id="XO-0202", modality="MR", code="MR-HEAD", body="HEAD"), "103^",
         "OBR^1^24", "cannot change"),
        (orm("XO", placer="PXO3", control_id="XO-0203", priority="S"), "103^", "ORC^1^7", "priority cannot change"),
        (orm("XO", placer="PXO3", control_id="XO-0204", code="CT-NOSUCH"), "103^", "OBR^1^4", "unknown procedure"),
        (orm("XO", placer="NOSUCH", control_id="XO-0205"), "204^", "ORC^1^2", "no order"),
    ]
    for text, code, where, why in cases:
        answer = await center.listener.send(text.encode())
        assert ack_fields(answer)["MSA"][1] == "AE", answer
        [err] = err_segments(answer)
        assert code in err and where in err and why in err, err
    row = order_row("PXO3")
    assert (row.modality, row.priority, row.procedure_code) == ("CT", "routine", "CT-CHEST")
