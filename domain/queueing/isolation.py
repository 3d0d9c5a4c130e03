"""Isolation separation (R6.1.6): MDRO or infectious patients never queue next to each other.

The room is cleaned after an isolation patient; a second one right behind would meet what the
cleaning has not removed yet. When a patient joins, every pair of adjacent isolation patients
gets a gap: the first ordinary patient waiting behind the pair in the later one's care tier
moves in between. Only isolation patients wait longer for it; nobody moves out of their care
tier, and ordinary patients keep their order among themselves (as do isolation patients).
A pair stays adjacent only while no ordinary patient of that tier waits behind it; the next
ordinary arrival then fills the gap.

Order here is the care-tier order at arrival, (tier, seq) as `calling.waiting` sorts it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from domain.queueing.calling import Item


def _order(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (i.tier, i.seq, i.id))


def unseparated(line: Sequence[Item], isolated: set[str]) -> list[tuple[str, str]]:
    """Adjacent isolation pairs that an ordinary patient waiting behind them could separate
    (the invariant: always empty after `place`)."""
    order = _order(i for i in line if i.state == "waiting")
    out = []
    for k in range(len(order) - 1):
        a, b = order[k], order[k + 1]
        if a.id in isolated and b.id in isolated and _filler(order, k + 1, isolated) is not None:
            out.append((a.id, b.id))
    return out


def _filler(order: Sequence[Item], k: int, isolated: set[str]) -> Item | None:
    """The first ordinary patient behind order[k] in its tier."""
    for x in order[k + 1:]:
        if x.tier != order[k].tier:
            return None
        if x.id not in isolated:
            return x
    return None


def place(line: Sequence[Item], new: Item, isolated: set[str]) -> list[Item]:
    """Items whose seq changes when `new` joins the waiting `line` of one queue: `new` itself,
    then each ordinary patient moved in front of an isolation patient to make a gap."""
    items = {i.id: i for i in line if i.state == "waiting"}
    items[new.id] = new
    changed: dict[str, Item] = {new.id: new}
    while True:
        order = _order(items.values())
        move = None
        for k in range(len(order) - 1):
            a, b = order[k], order[k + 1]
            if a.id in isolated and b.id in isolated:
                filler = _filler(order, k + 1, isolated)
                before = a.seq if a.tier == b.tier else b.seq - 1.0
                mid = (before + b.seq) / 2
                if filler is not None and before < mid < b.seq:  # equal arrival times leave no gap
                    move = replace(filler, seq=mid)
                    break
        if move is None:
            return list(changed.values())
        items[move.id] = changed[move.id] = move
