"""Queue calling (R6.2.2): care-policy tiers, call modes, cross calling, masked displays."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.queueing.calling import (
    Item,
    QueueDef,
    QueueRefusal,
    board,
    call_next,
    call_selected,
    finish,
    mask_name,
    position_and_eta,
    recall,
    skip,
    transfer,
    waiting,
)
from domain.queueing.policy import DEFAULT_POLICY, PatientTraits

CT = QueueDef("q-ct", "CT", frozenset({"CT1", "CT2"}))  # one queue, two rooms
CT1_ENH = QueueDef("q-ct1-enh", "CT1 contrast", frozenset({"CT1"}))  # CT1 also calls its own queue
US = QueueDef("q-us", "US", frozenset({"US1"}))
QUEUES = [CT, CT1_ENH, US]


def item(n: int, queue: QueueDef = CT, tier: int = 9, name: str = "张三丰") -> Item:
    return Item(id=f"i{n}", accession_number=f"A{n}", patient_name=name, queue_id=queue.id, tier=tier, seq=float(n))


def replace_in(items: list[Item], new: Item) -> list[Item]:
    return [new if i.id == new.id else i for i in items]


def test_policy_tiers_emergency_first_then_elderly_and_disabled():
    assert DEFAULT_POLICY.tier(PatientTraits(priority="stat", age=30)) == (0, "emergency first")
    assert DEFAULT_POLICY.tier(PatientTraits(age=85)) == (3, "elderly (80+)")
    assert DEFAULT_POLICY.tier(PatientTraits(age=40, flags=frozenset({"disabled"}))) == (3, "disabled")
    assert DEFAULT_POLICY.tier(PatientTraits(age=40, flags=frozenset({"returning_after_preparation"})))[0] == 2
    assert DEFAULT_POLICY.tier(PatientTraits(age=40)) == (9, "arrival order")


def test_next_takes_the_best_tier_then_arrival_across_the_rooms_queues():
    items = [item(1), item(2, tier=3), item(3, CT1_ENH), item(4, US, tier=0)]
    called, log = call_next(items, "CT1", QUEUES)
    assert called.id == "i2" and called.state == "called" and log.mode == "next"
    called, _ = call_next(items, "CT2", QUEUES)  # CT2 does not call the contrast queue
    assert called.id == "i2"
    items = replace_in(items, call_next(items, "CT1", QUEUES)[0])
    assert call_next(items, "CT1", QUEUES)[0].id == "i1"
    with pytest.raises(QueueRefusal):
        call_next([], "CT1", QUEUES)


def test_recall_skip_select_transfer_finish():
    items = [item(n) for n in range(1, 6)]
    first, _ = call_next(items, "CT1", QUEUES)
    again, log = recall(first)
    assert again.calls == 2 and log.mode == "recall"
    back, log = skip(replace_in(items, again), again, back=2)
    items = replace_in(items, back)
    assert [i.id for i in waiting(items, [CT.id])] == ["i2", "i3", "i1", "i4", "i5"] and log.detail == "back 2 places"
    chosen, log = call_selected(items[3], "CT2", QUEUES)
    assert chosen.id == "i4" and log.mode == "select"
    with pytest.raises(QueueRefusal):
        call_selected(items[3], "US1", QUEUES)
    moved, log = transfer(items[4], US)
    assert moved.queue_id == US.id and moved.seq == items[4].seq and log.detail == "from q-ct"
    done, log = finish(chosen)
    assert done.state == "done" and log.mode == "finish"
    with pytest.raises(QueueRefusal):
        finish(done)


def test_skip_to_the_end():
    items = [item(n) for n in range(1, 4)]
    called, _ = call_next(items, "CT1", QUEUES)
    back, _ = skip(replace_in(items, called), called)
    assert [i.id for i in waiting(replace_in(items, back), [CT.id])] == ["i2", "i3", "i1"]


def test_names_are_masked_on_displays():
    assert mask_name("张三丰") == "张*丰"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧**娜"
    assert mask_name("Zhang San") == "Z**** S**"
    items = [item(1, name="李四"), item(2, name="王小明")]
    items = replace_in(items, call_next(items, "CT1", QUEUES)[0])
    line = board(items, "CT1", QUEUES)
    assert (line.current, line.next, line.waiting) == ("李*", ["王*明"], 1)


def test_position_and_eta():
    items = [item(n) for n in range(1, 5)]
    assert position_and_eta(items, items[3], minutes_per_patient=10, rooms_serving=2) == (3, 15.0)


OPS = st.lists(st.tuples(st.sampled_from(["next", "recall", "skip", "skip_end", "transfer", "finish"]),
                         st.sampled_from(["CT1", "CT2", "US1"]), st.integers(1, 4)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(tiers=st.lists(st.sampled_from([0, 2, 3, 9]), min_size=1, max_size=12), ops=OPS)
def test_property_calls_never_lose_or_duplicate_a_patient_and_next_is_always_the_head(tiers, ops):
    items = [item(n, [CT, CT1_ENH, US][n % 3], tier=t) for n, t in enumerate(tiers)]
    log = []
    for op, room, n in ops:
        try:
            if op == "next":
                line = waiting(items, [q.id for q in QUEUES if room in q.rooms])
                new, call = call_next(items, room, QUEUES)
                assert (new.tier, new.seq) == (line[0].tier, line[0].seq)
            else:
                called = [i for i in items if i.state == "called"]
                if not called:
                    continue
                target = called[n % len(called)]
                new, call = {"recall": lambda: recall(target), "skip": lambda: skip(items, target, n),
                             "skip_end": lambda: skip(items, target), "transfer": lambda: transfer(target, US),
                             "finish": lambda: finish(target)}[op]()
        except QueueRefusal:
            continue
        items = replace_in(items, new)
        log.append(call)
    assert sorted(i.id for i in items) == sorted(f"i{n}" for n in range(len(tiers)))
    rooms_called = [i.room_id for i in items if i.state == "called"]
    assert all(r is not None for r in rooms_called)
    assert len(log) == len([c for c in log if c.item_id in {i.id for i in items}])  # every call names a patient


def test_waiting_time_ages_a_patient_up_but_never_into_the_emergency_tier() -> None:
    from domain.queueing.calling import Aging, Item, escalate, waiting

    hour = 3600.0
    routine_early = Item("r", "A1", "甲", "q", tier=9, seq=0.0)
    elderly_late = Item("e", "A2", "乙", "q", tier=3, seq=5 * hour)
    emergency = Item("s", "A3", "丙", "q", tier=0, seq=6 * hour)
    items = [routine_early, elderly_late, emergency]
    assert [i.id for i in waiting(items, ["q"])] == ["s", "e", "r"]
    # Six hours later with 30-minute aging the routine patient has climbed to tier 1 (the floor).
    aged = Aging(now=6 * hour, minutes=30)
    assert aged.tier(routine_early) == 1 and aged.tier(elderly_late) == 1 and aged.tier(emergency) == 0
    assert [i.id for i in waiting(items, ["q"], aged)] == ["s", "r", "e"]  # same tier: arrival decides
    assert Aging(now=6 * hour, minutes=0).tier(routine_early) == 9  # aging off


def test_escalate_moves_up_only() -> None:
    import pytest

    from domain.queueing.calling import Item, QueueRefusal, escalate, waiting

    a, b = Item("a", "A1", "甲", "q", tier=9, seq=1.0), Item("b", "A2", "乙", "q", tier=9, seq=2.0)
    new, call = escalate(b, 1, "chest pain")
    assert (new.tier, new.tier_reason, call.mode, call.detail) == (1, "chest pain", "escalate", "chest pain")
    assert [i.id for i in waiting([a, new], ["q"])] == ["b", "a"]
    with pytest.raises(QueueRefusal, match="nothing to expedite"):
        escalate(new, 3, "feels better")
