"""Isolation patients never queue next to each other (R6.1.6): a property over random arrivals."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.queueing.calling import Item, waiting
from domain.queueing.isolation import place, unseparated

T0 = 1_780_000_000.0  # epoch seconds, as tickets carry them


def arrive(line: dict[str, Item], isolated: set[str], n: int, tier: int, iso: bool, gap_s: float) -> None:
    seq = max((i.seq for i in line.values()), default=T0) + gap_s
    new = Item(id=f"t{n:03d}", accession_number=f"A{n}", patient_name="x", queue_id="q", tier=tier, seq=seq)
    if iso:
        isolated.add(new.id)
    for changed in place(list(line.values()), new, isolated):
        line[changed.id] = changed


def test_an_ordinary_arrival_fills_the_gap_between_two_isolation_patients():
    line: dict[str, Item] = {}
    iso: set[str] = set()
    for n, flag in enumerate([False, True, True]):
        arrive(line, iso, n, 9, flag, 60)
    order = [i.id for i in waiting(line.values(), ["q"])]
    assert order == ["t000", "t001", "t002"]  # nobody behind them yet: nothing can separate them
    arrive(line, iso, 3, 9, False, 60)
    assert [i.id for i in waiting(line.values(), ["q"])] == ["t000", "t001", "t003", "t002"]


def test_isolation_patient_arriving_behind_another_waits_behind_the_next_ordinary_patient():
    line: dict[str, Item] = {}
    iso: set[str] = set()
    for n, flag in enumerate([True, False, False, True]):
        arrive(line, iso, n, 9, flag, 30)
    assert [i.id for i in waiting(line.values(), ["q"])] == ["t000", "t001", "t002", "t003"]
    arrive(line, iso, 4, 9, True, 30)  # t003, t004 adjacent until someone ordinary comes
    arrive(line, iso, 5, 9, False, 30)
    assert [i.id for i in waiting(line.values(), ["q"])] == ["t000", "t001", "t002", "t003", "t005", "t004"]


arrivals = st.lists(st.tuples(st.sampled_from([0, 1, 3, 9]), st.booleans(), st.floats(0.5, 600)),
                    min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(arrivals)
def test_no_two_isolation_patients_adjacent_when_someone_could_separate_them(seq):
    line: dict[str, Item] = {}
    iso: set[str] = set()
    for n, (tier, flag, gap) in enumerate(seq):
        before = {i.id: i for i in line.values()}
        arrive(line, iso, n, tier, flag, gap)
        assert unseparated(list(line.values()), iso) == []
        order = waiting(line.values(), ["q"])
        # Nobody leaves their care tier; ordinary patients keep their order among themselves, as
        # do isolation patients; only isolation patients are ever passed.
        assert [i.tier for i in order] == sorted(i.tier for i in order)
        for group in (iso, set(line) - iso):
            ids = [i.id for i in order if i.id in group]
            assert ids == sorted(ids, key=lambda k: (line[k].tier, k))
        for k, old in before.items():
            if k not in iso:
                assert line[k].seq <= old.seq
            else:
                assert line[k].seq == old.seq


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=40))
def test_one_tier_separates_every_pair_that_ordinary_arrivals_after_it_allow(flags):
    line: dict[str, Item] = {}
    iso: set[str] = set()
    for n, flag in enumerate(flags):
        arrive(line, iso, n, 9, flag, 60)
    order = [i.id for i in waiting(line.values(), ["q"])]
    pairs = [(a, b) for a, b in zip(order, order[1:]) if a in iso and b in iso]
    # Any adjacent pair is in the all-isolation tail: no ordinary patient waits behind it.
    for a, b in pairs:
        assert all(x in iso for x in order[order.index(b):])
