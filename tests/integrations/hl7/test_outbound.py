"""Outbound ORU^R01 and order status to a HIS listening on a real socket (activities run as Temporal runs them)."""
from __future__ import annotations

import inspect
from datetime import datetime, timezone

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.hl7_outbound import (
    Delivery,
    OrderStatusMessage,
    ReportMessage,
    deliver_hl7,
    queue_order_status,
    queue_report_message,
)
from core.config import reset_settings_cache
from core.db import get_engine
from domain.hl7_tables import HL7Message, clear_raw
from domain.orders import OrderIn
from domain.scheduling import study_instance_uid
from domain.tables import ExamOrder, ReportVersion
from integrations.hl7 import log as msglog
from integrations.hl7.outbound import build_oru
from integrations.hl7.context import new_session
from services.order_intake import record_order
from tests.integrations.hl7.conftest import HIS, free_port
from tests.support.loop_driver import order_payload

AT = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)


def placed_order_with_reports(*versions: ReportVersion) -> ExamOrder:
    order = record_order(new_session, OrderIn.model_validate(order_payload())).order
    with Session(get_engine()) as s:
        for v in versions:
            v.accession_number = order.accession_number
            s.add(v)
        s.commit()
    return order


def version(n: int, status: str, **kw) -> ReportVersion:
    base = dict(version=n, tier="final", status=status, findings="右肺下叶片状实变影。\n双侧胸腔未见积液。",
                impression="右下肺炎", recommendation="两周后复查", author_id="u-radiologist",
                author_role="radiologist", signed_by="u-senior_radiologist", signed_at=AT, created_at=AT)
    return ReportVersion(**{**base, **kw})


async def run(fn, arg):
    """Run an activity as the worker would: sync ones return, async ones are awaited."""
    result = ActivityEnvironment().run(fn, arg)
    return await result if inspect.isawaitable(result) else result


def row(message_id: str) -> HL7Message:
    with Session(get_engine()) as s:
        found = s.get(HL7Message, message_id)
        assert found is not None
        return found


async def test_final_report_becomes_oru_with_one_obx_per_section(his: HIS) -> None:
    order = placed_order_with_reports(version(1, "working", tier="draft"), version(3, "valid"))
    req = ReportMessage(accession_number=order.accession_number, version=3, kind="final")
    message_id = await run(queue_report_message, req)
    assert await run(queue_report_message, req) == message_id  # a retried activity queues it once
    assert await run(deliver_hl7, Delivery(message_id=message_id)) == "delivered"
    assert await run(deliver_hl7, Delivery(message_id=message_id)) == "delivered"  # retry after success: no resend
    (oru,) = his.messages()
    assert str(oru.segment("MSH")[9]) == "ORU^R01^ORU_R01" and str(oru.segment("MSH")[18]) == "UNICODE UTF-8"
    obr = oru.segment("OBR")
    assert str(obr[25]) == "F" and str(obr[3]) == f"{order.accession_number}^RADLOOP" and str(obr[24]) == "CT"
    obx = oru.segments("OBX")
    assert [str(o[3][0][0]) for o in obx] == ["FINDINGS", "IMPRESSION", "RECOMMENDATION"]
    assert {str(o[11]) for o in obx} == {"F"} and all(str(o[8]) == "" for o in obx)
    assert str(obx[0][5]) == "右肺下叶片状实变影。\\.br\\双侧胸腔未见积液。"
    assert "张三" in str(oru.segment("PID")[5])
    stored = row(message_id)
    assert (stored.status, stored.ack_code, stored.attempts, stored.direction) == ("delivered", "AA", 1, "outbound")


async def test_corrected_critical_report_references_the_recalled_version(his: HIS) -> None:
    order = placed_order_with_reports(
        version(3, "recalled", recall_reason="wrong side", recalled_at=AT),
        version(5, "valid", tier="amended", impression="左下肺炎", critical=True, critical_finding="张力性气胸"),
    )
    message_id = await run(queue_report_message, ReportMessage(
        accession_number=order.accession_number, version=5, kind="corrected"))
    await run(deliver_hl7, Delivery(message_id=message_id))
    (oru,) = his.messages()
    assert str(oru.segment("OBR")[25]) == "C"
    obx = {str(o[3][0][0]): o for o in oru.segments("OBX")}
    assert {str(o[11]) for o in obx.values()} == {"C"}
    assert str(obx["PRIOR_VERSION"][5]) == "3"
    assert str(obx["IMPRESSION"][8]) == "AA" and str(obx["CRITICAL"][8]) == "AA"
    assert str(obx["CRITICAL"][5]) == "张力性气胸" and str(obx["FINDINGS"][8]) == ""
    assert "replaces v3: wrong side" in str(oru.segment("NTE")[3])


async def test_his_down_queues_in_order_and_delivers_when_it_returns(his: HIS, monkeypatch) -> None:
    await his.go_down()
    order = placed_order_with_reports(version(3, "valid"))
    first = await run(queue_order_status, OrderStatusMessage(accession_number=order.accession_number,
                                                               status="scheduled", seq=1))
    second = await run(queue_report_message, ReportMessage(accession_number=order.accession_number, version=3,
                                                           kind="final"))
    with pytest.raises(ApplicationError) as down:
        await run(deliver_hl7, Delivery(message_id=first))
    assert not down.value.non_retryable and down.value.type == "HISUnavailable"
    with Session(get_engine()) as s:
        backlog = msglog.outbound_backlog(s)
    assert [m.id for m in backlog] == [first, second]  # oldest first, nothing dropped
    assert (row(first).status, row(first).attempts) == ("pending", 1) and "unreachable" in row(first).error
    # The HIS comes back: Temporal's next retry delivers, in order.
    await his.come_back()
    assert await run(deliver_hl7, Delivery(message_id=first)) == "delivered"
    assert await run(deliver_hl7, Delivery(message_id=second)) == "delivered"
    status, oru = his.messages()
    assert str(status.segment("ORC")[1]) == "SC" and str(status.segment("ORC")[5]) == "SC"
    assert str(oru.segment("MSH")[9]).startswith("ORU^R01")
    with Session(get_engine()) as s:
        assert msglog.outbound_backlog(s) == []
    assert row(first).attempts == 2


async def test_his_answers_decide_retry(his: HIS, monkeypatch) -> None:
    order = placed_order_with_reports(version(3, "valid"))
    statuses = [await run(queue_order_status, OrderStatusMessage(
        accession_number=order.accession_number, status=s, seq=n)) for n, s in enumerate(["cancelled", "reported"])]
    his.answer = "AR"
    with pytest.raises(ApplicationError) as busy:
        await run(deliver_hl7, Delivery(message_id=statuses[0]))
    assert not busy.value.non_retryable and row(statuses[0]).status == "pending"
    his.answer = "AE"
    with pytest.raises(ApplicationError) as refused:
        await run(deliver_hl7, Delivery(message_id=statuses[1]))
    assert refused.value.non_retryable and refused.value.type == "HISRejected"
    assert row(statuses[1]).status == "error" and "AE" in row(statuses[1]).error
    assert [str(m.segment("ORC")[5]) for m in his.messages()] == ["CA", "CM"]


async def test_without_a_his_endpoint_nothing_is_sent(sqlite_database: str, monkeypatch) -> None:
    monkeypatch.delenv("RADLOOP_HIS_MLLP_HOST", raising=False)
    reset_settings_cache()
    order = placed_order_with_reports(version(3, "valid"))
    message_id = await run(queue_report_message, ReportMessage(
        accession_number=order.accession_number, version=3, kind="final"))
    assert await run(deliver_hl7, Delivery(message_id=message_id)) == "not_sent"
    assert row(message_id).status == "not_sent" and row(message_id).attempts == 0


async def test_unreachable_port_is_retryable(sqlite_database: str, monkeypatch) -> None:
    monkeypatch.setenv("RADLOOP_HIS_MLLP_HOST", "127.0.0.1")
    monkeypatch.setenv("RADLOOP_HIS_MLLP_PORT", str(free_port()))
    reset_settings_cache()
    order = placed_order_with_reports(version(3, "valid"))
    message_id = await run(queue_report_message, ReportMessage(
        accession_number=order.accession_number, version=3, kind="final"))
    for attempt in (1, 2):
        with pytest.raises(ApplicationError):
            await run(deliver_hl7, Delivery(message_id=message_id))
        assert row(message_id).attempts == attempt


async def test_the_his_profile_chooses_omi_o23_for_order_status(his: HIS, monkeypatch) -> None:
    monkeypatch.setenv("RADLOOP_HIS_ORDER_STATUS_MESSAGE", "OMI^O23")
    monkeypatch.setenv("RADLOOP_HIS_MLLP_APPLICATION", "HIS-PROFILE")
    reset_settings_cache()
    order = placed_order_with_reports()
    message_id = await run(queue_order_status, OrderStatusMessage(
        accession_number=order.accession_number, status="scheduled", seq=1))
    assert await run(deliver_hl7, Delivery(message_id=message_id)) == "delivered"
    (sent,) = his.messages()
    assert str(sent.segment("MSH")[9]) == "OMI^O23^OMI_O23" and str(sent.segment("MSH")[5]) == "HIS-PROFILE"
    assert str(sent.segment("ORC")[1]) == "SC" and str(sent.segment("ORC")[5]) == "SC"
    ipc = sent.segment("IPC")
    assert str(ipc[2]) == order.accession_number and str(ipc[5]) == "CT" and str(ipc[3]) == study_instance_uid(order.accession_number)
    # hl7apy, strictly, takes it as a valid OMI_O23 (IPC is required there).
    parsed = parse_message(clear_raw(row(message_id)).decode().replace("\n", "\r"), validation_level=VALIDATION_LEVEL.STRICT)
    parsed.validate()


def test_pid3_to_the_his_carries_the_numbers_it_registered(sqlite_database: str) -> None:
    """Personal numbers are sealed at rest (security.field_crypto); the HIS gets them back unsealed."""
    card = "11010119700501123X"
    order = record_order(new_session, OrderIn.model_validate(order_payload(patient={"identifiers": [
        {"system": "MRN", "value": "MRN-PID3"}, {"system": "ID_CARD", "value": card}]}))).order
    with Session(get_engine()) as s:
        s.add(version(1, "valid", accession_number=order.accession_number))
        s.commit()
        text = build_oru(s, order.accession_number, 1, "final").text
    pid3 = next(seg for seg in text.split("\r") if seg.startswith("PID|")).split("|")[3]
    assert pid3.split("~")[:2] == ["MRN-PID3^^^MRN", f"{card}^^^ID_CARD"]
