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
