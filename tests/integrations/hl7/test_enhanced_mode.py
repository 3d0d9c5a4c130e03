"""Enhanced acknowledgment mode end to end: accept ACK on the connection, application ACK sent to the HIS.

Every wait here is bounded (`until`, the client's timeout, the sender's bounded close, the
test timeout), so a regression fails instead of hanging the run.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.hl7_tables import HL7Message
from integrations.hl7.app_acks import APP_ACK_TYPE, ApplicationAckSender
from integrations.hl7.context import InboundContext
from integrations.hl7.delivery import DeliveryFailed
from tests.integrations.hl7.conftest import HIS, Listener, start_listener, temporal_nowhere
from tests.integrations.hl7.messages import ack_fields, msh, pid


@pytest.fixture
async def enhanced(his: HIS) -> AsyncIterator[tuple[Listener, ApplicationAckSender, HIS]]:
    sender = ApplicationAckSender(first_retry_seconds=0.05, max_retry_seconds=0.2)
    sender.start()
    listener = await start_listener(InboundContext(temporal=temporal_nowhere(), application_acks=sender.submit))
    yield listener, sender, his
    await listener.server.close()
    await sender.close()


def adt(control_id: str, mrn: str, msh15: str, msh16: str, dob: str = "19700501") -> bytes:
    return "\r".join([msh("ADT^A04^ADT_A01", control_id, extra={15: msh15, 16: msh16}),
                      pid(mrn, dob=dob)]).encode()


def app_acks() -> list[HL7Message]:
    with Session(get_engine()) as s:
        return list(s.exec(select(HL7Message).where(HL7Message.message_type == APP_ACK_TYPE)
                           .order_by(HL7Message.received_at)).all())


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_accept_ack_now_application_ack_to_the_his(enhanced) -> None:
    listener, _sender, his = enhanced
    accept = await listener.send(adt("EN-1", "M-EN1", "AL", "AL"))
    assert ack_fields(accept)["MSA"][1] == "CA"
    await until(lambda: len(his.received) == 1)
    (app,) = his.messages()
    assert str(app.segment("MSA")[1]) == "AA" and str(app.segment("MSA")[2]) == "EN-1"
    assert str(app.segment("MSH")[15]) == "AL" and str(app.segment("MSH")[9]).startswith("ACK")
    await until(lambda: app_acks()[0].status == "delivered")
    assert app_acks()[0].ack_code == "CA"  # the HIS's accept ACK for our application ACK
    # A content error: CE at once, AE with ERR to the HIS (MSH-16 ER asks only for errors).
    accept = await listener.send(adt("EN-2", "M-EN2", "AL", "ER", dob="notadate"))
    assert ack_fields(accept)["MSA"][1] == "CE"
    await until(lambda: len(his.received) == 2)
    second = his.messages()[1]
    assert str(second.segment("MSA")[1]) == "AE" and "PID^1^7" in str(second.segment("ERR"))
    # MSH-16 SU: no application ACK for a failure; ER: none for a success.
    await listener.send(adt("EN-3", "M-EN3", "AL", "SU", dob="bad"))
    await listener.send(adt("EN-4", "M-EN4", "AL", "ER"))
    await asyncio.sleep(0.3)
    assert len(his.received) == 2 and len(app_acks()) == 2


async def test_application_acks_wait_for_the_his_and_keep_their_order(enhanced) -> None:
    listener, _sender, his = enhanced
    await his.go_down()
    for n in (1, 2, 3):
        assert ack_fields(await listener.send(adt(f"ORD-{n}", f"M-O{n}", "AL", "AL")))["MSA"][1] == "CA"
    await until(lambda: all(r.attempts >= 1 for r in app_acks()[:1]))
    assert {r.status for r in app_acks()} <= {"queued", "pending"}
    await his.come_back()
    await until(lambda: len(his.received) == 3)
    assert [str(m.segment("MSA")[2]) for m in his.messages()] == ["ORD-1", "ORD-2", "ORD-3"]
    await until(lambda: {r.status for r in app_acks()} == {"delivered"})


@pytest.mark.timeout(60)
async def test_a_restarted_listener_resumes_undelivered_application_acks(his: HIS) -> None:
    await his.go_down()
    first = ApplicationAckSender(first_retry_seconds=0.05, max_retry_seconds=0.1)
    first.start()
    listener = await start_listener(InboundContext(temporal=temporal_nowhere(), application_acks=first.submit))
    assert ack_fields(await listener.send(adt("RES-1", "M-R1", "AL", "AL")))["MSA"][1] == "CA"
    await until(lambda: app_acks() and app_acks()[0].attempts >= 1)  # it tried while the HIS was down
    await listener.server.close()
    # The listener stops with the HIS still down, in the middle of its retries (a refused connect each 0.1 s).
    async with asyncio.timeout(10):
        await first.close()
    assert app_acks()[0].status in ("queued", "pending")
    await his.come_back()
    second = ApplicationAckSender(first_retry_seconds=0.05)
    second.start()
    try:
        assert await second.resume() == 1
        await until(lambda: len(his.received) == 1)
    finally:
        async with asyncio.timeout(10):
            await second.close()
    assert str(his.messages()[0].segment("MSA")[2]) == "RES-1"


@pytest.mark.timeout(30)
async def test_close_stops_the_sender_even_when_a_delivery_swallows_the_cancel(sqlite_database: str) -> None:
    """The hang behind the restart test: Python 3.11's asyncio.wait_for returns (or raises) its inner
    result instead of CancelledError when the cancel arrives as that result comes in, e.g. a refused
    connect. Here a delivery does exactly that on every cancel, and close must still return."""
    attempts: list[str] = []
    swallowed: list[str] = []

    async def swallowing(message_id: str) -> str:
        attempts.append(message_id)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.append(message_id)  # not re-raised: what wait_for does when its inner future is done
        raise DeliveryFailed("HIS unreachable", retryable=True)

    sender = ApplicationAckSender(first_retry_seconds=0.01, max_retry_seconds=0.01, deliver_one=swallowing)
    sender.start()
    sender.submit("out-appack-x")
    await until(lambda: attempts == ["out-appack-x"])
    async with asyncio.timeout(5):
        await sender.close()
    assert sender._task is not None and sender._task.done()
    assert len(attempts) == 1  # stopped: no retry after close
    assert swallowed == ["out-appack-x"]  # the cancel really was swallowed, and close still returned
