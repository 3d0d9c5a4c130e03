"""Queue calling on SQLite and PostgreSQL: terminals racing on "next" never call one patient twice,
stale actions are refused, every call is logged, the daily close lists who is left."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.queue_tables import QueueCall
from domain.queueing.policy import PatientTraits
from services import queueing
from services.errors import Conflict

ADULT = PatientTraits(age=40)


@pytest.fixture
def ct_queue(database):
    with Session(get_engine()) as s:
        queueing.define_queue(s, "q-ct", "CT", ["CT1", "CT2"])
        s.commit()


def test_two_rooms_pressing_next_together_call_different_patients(ct_queue):
    for n in range(6):
        queueing.join(f"A{n}", f"患者{n}", "q-ct", ADULT, "u-registrar")
    barrier = threading.Barrier(2)
    called: list[str] = []

    def room(room_id: str) -> None:
        barrier.wait()
        for _ in range(3):
            called.append(queueing.call_next(room_id, "u-tech").accession_number)

    threads = [threading.Thread(target=room, args=(r,)) for r in ("CT1", "CT2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(called) == [f"A{n}" for n in range(6)]
    with pytest.raises(Conflict, match="no one is waiting"):
        queueing.call_next("CT1", "u-tech")


def test_policy_order_skip_and_stale_actions(ct_queue):
    queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    queueing.join("A2", "李四", "q-ct", ADULT, "u-registrar")
    queueing.join("A3", "王五", "q-ct", PatientTraits(age=85), "u-registrar")
    first = queueing.call_next("CT1", "u-tech")
    assert first.accession_number == "A3" and first.tier_reason == "elderly (80+)"
    skipped = queueing.act(first.id, "skip", "u-tech", back=1)
    assert skipped.state == "waiting"
    with pytest.raises(Conflict):
        queueing.act(first.id, "recall", "u-tech")  # no longer called
    assert queueing.call_next("CT1", "u-tech").accession_number == "A3"  # still first in its (higher) tier
    line = queueing.board("CT1")
    assert (line.current, line.next, line.waiting) == ("王*", ["张*", "李*"], 2)
    with Session(get_engine()) as s:
        modes = [c.mode for c in s.exec(select(QueueCall).order_by(QueueCall.id))]
    assert modes == ["join", "join", "join", "next", "skip", "next"]


def test_daily_close_lists_patients_not_finished(ct_queue):
    a = queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")
    queueing.join("A2", "李四", "q-ct", ADULT, "u-registrar")
    queueing.act(queueing.call_next("CT1", "u-tech").id, "finish", "u-tech")
    today = datetime.now(timezone.utc).astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert [t.accession_number for t in queueing.unfinished(today)] == ["A2"]
    assert a.accession_number == "A1"
    again = queueing.join("A1", "张三", "q-ct", ADULT, "u-registrar")  # finished: may queue again (re-exam)
    assert again.id != a.id


def test_condition_change_re_sorts_the_queue_and_is_logged(ct_queue):
    from domain.tables import DomainEvent

    first = queueing.join("C1", "张三", "q-ct", ADULT, "u-registrar")
    second = queueing.join("C2", "李四", "q-ct", ADULT, "u-registrar")
    raised = queueing.condition_change(second.id, PatientTraits(age=40, priority="urgent"), "chest pain", "u-nurse")
    assert (raised.tier, raised.tier_reason) == (1, "chest pain (urgent)")
    assert queueing.eta(second.id).position == 0 and queueing.eta(first.id).position == 1
    with pytest.raises(Conflict, match="nothing to expedite"):
        queueing.condition_change(second.id, ADULT, "better", "u-nurse")
    assert queueing.call_next("CT1", "u-tech").accession_number == "C2"
    with Session(get_engine()) as s:
        modes = [c.mode for c in s.exec(select(QueueCall).where(QueueCall.ticket_id == second.id).order_by(QueueCall.id))]
        assert modes == ["join", "escalate", "next"]
        event = s.exec(select(DomainEvent).where(DomainEvent.accession_number == "C2")).one()
        assert event.kind == "condition_changed" and event.detail["to_tier"] == 1


def test_eta_from_position_and_measured_exam_time(ct_queue, monkeypatch):
    from datetime import timedelta

    from core.config import reset_settings_cache

    monkeypatch.setenv("RADLOOP_QUEUE_MINUTES_PER_PATIENT", "10")
    reset_settings_cache()
    tickets = [queueing.join(f"E{n}", f"患者{n}", "q-ct", ADULT, "u-registrar") for n in range(5)]
    est = queueing.eta(tickets[4].id)
    # Four ahead, two rooms calling from the queue, 10 configured minutes each.
    assert (est.position, est.minutes, est.basis) == (4, 20.0, "configured")
    done = queueing.call_next("CT1", "u-tech")
    # Today's log measures 16 minutes from call to finish for the first patient.
    with Session(get_engine()) as s:
        call = s.exec(select(QueueCall).where(QueueCall.ticket_id == done.id, QueueCall.mode == "next")).one()
        call.at = call.at - timedelta(minutes=16)
        s.add(call)
        s.commit()
    queueing.act(done.id, "finish", "u-tech")
    est = queueing.eta(tickets[4].id)
    assert est.basis == "measured" and abs(est.minutes_per_patient - 16) < 0.5
    assert est.position == 3 and abs(est.minutes - 3 * est.minutes_per_patient / 2) < 0.1
    with pytest.raises(Conflict, match="not waiting"):
        queueing.eta(done.id)
    reset_settings_cache()
