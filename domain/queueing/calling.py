"""Queues and call modes (R6.2.2).

- A queue serves one or more rooms at one stage (exam, injection, anaesthesia...); a room
  may call from several queues (one room many queues, many rooms one queue, cross calling).
- Order: (tier, seq). `seq` starts as the arrival number; skip moves it, transfer keeps it
  (a transferred patient does not lose their place by arrival).
- Every operation returns the new item and a `Call` record; nothing is changed in place.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

CallMode = Literal["next", "recall", "skip", "select", "transfer", "finish", "leave", "escalate"]
State = Literal["waiting", "called", "done", "left"]


@dataclass(frozen=True, slots=True)
class QueueDef:
    id: str
    name: str
    rooms: frozenset[str]
    stage: str = "exam"


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    accession_number: str
    patient_name: str
    queue_id: str
    tier: int
    seq: float
    state: State = "waiting"
    room_id: str | None = None
    calls: int = 0
    tier_reason: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    """One call-desk action, as the call log stores it."""

    mode: CallMode
    item_id: str
    queue_id: str
    room_id: str | None
    detail: str = ""


class QueueRefusal(Exception):
    """An action that does not apply (no one waiting, wrong state): the reason says why."""


def queues_of_room(room_id: str, queues: Iterable[QueueDef]) -> list[QueueDef]:
    return [q for q in queues if room_id in q.rooms]


@dataclass(frozen=True, slots=True)
class Aging:
    """Waiting time raises priority (R6.1.6): one tier up per `minutes` waited, never above
    `floor` (the emergency tier stays the emergencies' own). `now` and `seq` are epoch seconds."""

    now: float
    minutes: float
    floor: int = 1

    def tier(self, item: Item) -> int:
        if self.minutes <= 0 or item.tier <= self.floor:
            return item.tier
        steps = int(max(self.now - item.seq, 0) // (self.minutes * 60))
        return max(self.floor, item.tier - steps)


def waiting(items: Iterable[Item], queue_ids: Iterable[str], aging: Aging | None = None) -> list[Item]:
    """Waiting patients of these queues, in calling order: (tier, aged by waiting time if given), arrival."""
    ids = set(queue_ids)
    tier = aging.tier if aging is not None else (lambda i: i.tier)
    return sorted((i for i in items if i.queue_id in ids and i.state == "waiting"), key=lambda i: (tier(i), i.seq, i.id))


def call_next(items: Sequence[Item], room_id: str, queues: Iterable[QueueDef],
              aging: Aging | None = None) -> tuple[Item, Call]:
    mine = queues_of_room(room_id, queues)
    line = waiting(items, [q.id for q in mine], aging)
    if not line:
        raise QueueRefusal(f"no one is waiting for room {room_id}")
    first = line[0]
    return _called(first, room_id, "next")


def _called(item: Item, room_id: str, mode: CallMode) -> tuple[Item, Call]:
    new = replace(item, state="called", room_id=room_id, calls=item.calls + 1)
    return new, Call(mode, item.id, item.queue_id, room_id)


def recall(item: Item) -> tuple[Item, Call]:
    """Call the same patient again (they did not come yet)."""
    if item.state != "called" or item.room_id is None:
        raise QueueRefusal("only a called patient can be recalled")
    return _called(item, item.room_id, "recall")


def call_selected(item: Item, room_id: str, queues: Iterable[QueueDef]) -> tuple[Item, Call]:
    """Call a chosen waiting patient out of order (the call log keeps who did it)."""
    if item.state != "waiting":
        raise QueueRefusal(f"patient is {item.state}, not waiting")
    if item.queue_id not in {q.id for q in queues_of_room(room_id, queues)}:
        raise QueueRefusal(f"room {room_id} does not call from queue {item.queue_id}")
    return _called(item, room_id, "select")


def skip(items: Sequence[Item], item: Item, back: int | None = None) -> tuple[Item, Call]:
    """A called patient who is not there goes back `back` places among those waiting, or to the end."""
    if item.state != "called":
        raise QueueRefusal("only a called patient can be skipped")
    same_tier = [i for i in waiting(items, [item.queue_id]) if i.id != item.id and i.tier == item.tier]
    if back is None or back >= len(same_tier):
        seq = (same_tier[-1].seq + 1) if same_tier else item.seq
        detail = "to the end"
    else:
        if back < 1:
            raise QueueRefusal("skip back at least one place")
        before, after = same_tier[back - 1], same_tier[back]
        seq = (before.seq + after.seq) / 2
        detail = f"back {back} places"
    new = replace(item, state="waiting", room_id=None, seq=seq)
    return new, Call("skip", item.id, item.queue_id, item.room_id, detail)


def transfer(item: Item, to: QueueDef) -> tuple[Item, Call]:
    """Move to another queue (another room or stage), keeping the place by arrival."""
    if item.state not in ("waiting", "called"):
        raise QueueRefusal(f"patient is {item.state}")
    new = replace(item, queue_id=to.id, state="waiting", room_id=None)
    return new, Call("transfer", item.id, to.id, None, f"from {item.queue_id}")


def escalate(item: Item, tier: int, reason: str) -> tuple[Item, Call]:
    """Condition changed while waiting (R6.1.7): a higher priority moves the patient up at once."""
    if item.state != "waiting":
        raise QueueRefusal(f"patient is {item.state}, not waiting")
    if tier >= item.tier:
        raise QueueRefusal(f"tier {tier} is not above the patient's tier {item.tier}: nothing to expedite")
    return replace(item, tier=tier, tier_reason=reason), Call("escalate", item.id, item.queue_id, None, reason)


def finish(item: Item, left: bool = False) -> tuple[Item, Call]:
    if item.state in ("done", "left"):
        raise QueueRefusal(f"patient is already {item.state}")
    mode: CallMode = "leave" if left else "finish"
    return replace(item, state="left" if left else "done"), Call(mode, item.id, item.queue_id, item.room_id)


def mask_name(name: str) -> str:
    """For public displays: 张三丰 -> 张*丰, 张三 -> 张*, Zhang San -> Z**** S** (R6.2.2)."""
    name = name.strip()
    if not name:
        return ""
    if " " in name:
        return " ".join(w[0] + "*" * (len(w) - 1) for w in name.split())
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


@dataclass(frozen=True)
class BoardLine:
    room_id: str
    current: str | None
    next: list[str]
    waiting: int


def board(items: Sequence[Item], room_id: str, queues: Iterable[QueueDef], show_next: int = 3,
          aging: Aging | None = None) -> BoardLine:
    """What a room's display shows: the called patient, the next few, how many wait; names masked."""
    mine = [q.id for q in queues_of_room(room_id, queues)]
    line = waiting(items, mine, aging)
    current = next((i for i in items if i.state == "called" and i.room_id == room_id), None)
    return BoardLine(room_id, mask_name(current.patient_name) if current else None,
                     [mask_name(i.patient_name) for i in line[:show_next]], len(line))


def position_and_eta(items: Sequence[Item], item: Item, minutes_per_patient: float,
                     rooms_serving: int, aging: Aging | None = None) -> tuple[int, float]:
    """Places ahead and a plain estimate of the wait (for screen, WeChat or SMS notices)."""
    line = waiting(items, [item.queue_id], aging)
    ahead = next((n for n, i in enumerate(line) if i.id == item.id), len(line))
    return ahead, ahead * minutes_per_patient / max(rooms_serving, 1)
