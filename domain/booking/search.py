"""Finding times (R6.1.5): one exam -> the earliest feasible segment; several exams ->
the closest feasible times on one day, in an order the conflict rules allow (R6.1.7).

Inputs are snapshots (segments sorted by start, then room); outputs name segments.
The service takes capacity afterwards and asks again if it lost a race.
"""
from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from domain.booking.calendar import Closure, RoomView, SegmentView
from domain.booking.feasibility import (
    PatientContext,
    Placed,
    Refusal,
    local_day,
    pair_ok,
    slot_refusals,
)
from domain.booking.rules import BookingRules, ExamTypeRule


@dataclass(frozen=True, slots=True)
class ExamRequest:
    """One exam to place: its label (accession number) and its rule."""

    label: str
    exam: ExamTypeRule


@dataclass(frozen=True, slots=True)
class Leg:
    label: str
    exam: ExamTypeRule
    segment: SegmentView
    campus: str

    def placed(self) -> Placed:
        return Placed(label=self.label, exam=self.exam, start=self.segment.start, end=self.segment.end,
                      campus=self.campus)


@dataclass(frozen=True)
class Plan:
    legs: tuple[Leg, ...]
    same_day: bool

    @property
    def span(self) -> timedelta:
        return max(leg.segment.end for leg in self.legs) - min(leg.segment.start for leg in self.legs)


class SlotQuote(BaseModel):
    segment_id: int
    room_id: str
    start: datetime
    end: datetime
    refusals: list[Refusal]


@dataclass(frozen=True)
class Snapshot:
    """What the search looks at: segments sorted by (start, room), rooms, closures, rules, now."""

    segments: Sequence[SegmentView]
    rooms: dict[str, RoomView]
    closures: Sequence[Closure]
    rules: BookingRules
    now: datetime

    def closures_of(self, room_id: str) -> list[Closure]:
        return [c for c in self.closures if c.room_id == room_id] if self.closures else []


def _refusals(snap: Snapshot, req: ExamRequest, seg: SegmentView, patient: PatientContext,
              others: Sequence[Placed] = ()) -> list[Refusal]:
    room = snap.rooms[seg.room_id]
    return slot_refusals(req.exam, seg, room, patient, snap.rules, snap.now, snap.closures_of(seg.room_id), others)


def _feasible(snap: Snapshot, req: ExamRequest, seg: SegmentView, patient: PatientContext,
              others: Sequence[Placed] = ()) -> bool:
    """The search's yes/no: the cheap room test first, then the checks up to the first refusal."""
    room = snap.rooms.get(seg.room_id)
    if room is None or not room.can_do(req.exam.code, req.exam.modality):
        return False
    return not slot_refusals(req.exam, seg, room, patient, snap.rules, snap.now, snap.closures_of(seg.room_id),
                             others, first_only=True)


def earliest(snap: Snapshot, req: ExamRequest, patient: PatientContext, others: Sequence[Placed] = (),
             skip: frozenset[int] = frozenset()) -> Leg | None:
    """The first segment (by start, then room) with no refusal; None when the window has none."""
    for seg in snap.segments:
        if seg.id not in skip and _feasible(snap, req, seg, patient, others):
            return Leg(req.label, req.exam, seg, snap.rooms[seg.room_id].campus)
    return None


def quote(snap: Snapshot, req: ExamRequest, patient: PatientContext, limit: int = 20) -> list[SlotQuote]:
    """The first `limit` segments of rooms that can do the exam, each with its refusals."""
    out: list[SlotQuote] = []
    for seg in snap.segments:
        room = snap.rooms.get(seg.room_id)
        if room is None or not room.can_do(req.exam.code, req.exam.modality):
            continue
        out.append(SlotQuote(segment_id=seg.id, room_id=seg.room_id, start=seg.start, end=seg.end,
                             refusals=_refusals(snap, req, seg, patient)))
        if len(out) >= limit:
            break
    return out


def _order_allowed(order: Sequence[ExamRequest], rules: BookingRules) -> bool:
    """Same-day order rules, checked on the sequence alone (prunes permutations early)."""
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            for rule in rules.conflicts:
                if rule.kind == "order" and rule.matches_first(b.exam.all_tags) and rule.matches_then(a.exam.all_tags):
                    return False
    return True


def same_day_possible(reqs: Sequence[ExamRequest], rules: BookingRules) -> bool:
    """False when no day can hold them all whatever the calendar: no order the rules allow,
    or two of them need a day or more between them. Saves searching every day of the window."""
    if not any(_order_allowed(o, rules) for o in itertools.permutations(reqs)):
        return False
    for a, b in itertools.combinations(reqs, 2):
        ta, tb = a.exam.all_tags, b.exam.all_tags
        for rule in rules.conflicts:
            if rule.kind == "gap" and rule.gap_minutes >= 24 * 60 and (
                    (rule.matches_first(ta) and rule.matches_then(tb)) or (rule.matches_first(tb) and rule.matches_then(ta))):
                return False
    return True


def sequence_orders(reqs: Sequence[ExamRequest], rules: BookingRules) -> list[tuple[ExamRequest, ...]]:
    """Orders to try when exams spread over days: those the same-day rules allow, else all."""
    orders = list(itertools.permutations(reqs))
    allowed = [o for o in orders if _order_allowed(o, rules)]
    return allowed or orders


def _day_plan(snap: Snapshot, reqs: Sequence[ExamRequest], patient: PatientContext,
              day_segments: Sequence[SegmentView], skip: frozenset[int]) -> Plan | None:
    """Best order and times on one day: the shortest span, then the earliest start."""
    # Candidates per exam, feasible on their own (against existing bookings, not each other).
    cands: dict[str, list[SegmentView]] = {
        r.label: [s for s in day_segments if s.id not in skip and _feasible(snap, r, s, patient)]
        for r in reqs
    }
    if any(not c for c in cands.values()):
        return None
    starts = {label: [s.start for s in segs] for label, segs in cands.items()}
    best: tuple[timedelta, datetime, tuple[Leg, ...]] | None = None
    for order in itertools.permutations(reqs):
        if not _order_allowed(order, snap.rules):
            continue
        head = order[0]
        tried: set[datetime] = set()
        for seg0 in cands[head.label]:
            if seg0.start in tried:
                continue  # another room at the same time gives the same span
            tried.add(seg0.start)
            legs = [Leg(head.label, head.exam, seg0, snap.rooms[seg0.room_id].campus)]
            for req in order[1:]:
                placed = [leg.placed() for leg in legs]
                segs = cands[req.label]
                i = bisect.bisect_left(starts[req.label], legs[-1].segment.end)
                nxt = next((s for s in segs[i:]
                            if all(pair_ok(
                                Placed(req.label, req.exam, s.start, s.end, snap.rooms[s.room_id].campus), p,
                                snap.rules) for p in placed)
                            and _day_count_ok(snap, patient, s, len(placed))), None)
                if nxt is None:
                    break
                legs.append(Leg(req.label, req.exam, nxt, snap.rooms[nxt.room_id].campus))
                if best is not None and nxt.end - seg0.start > best[0]:
                    break
            else:
                span = legs[-1].segment.end - seg0.start
                key = (span, seg0.start)
                if best is None or key < best[:2]:
                    best = (span, seg0.start, tuple(legs))
    return None if best is None else Plan(legs=best[2], same_day=True)


def _day_count_ok(snap: Snapshot, patient: PatientContext, seg: SegmentView, planned: int) -> bool:
    zone = ZoneInfo(snap.rules.timezone)
    day = local_day(seg.start, zone)
    existing = sum(1 for p in patient.existing if local_day(p.start, zone) == day)
    return existing + planned + 1 <= snap.rules.max_exams_per_patient_day


def _by_day(snap: Snapshot) -> dict:
    zone = ZoneInfo(snap.rules.timezone)
    days: dict = {}
    for seg in snap.segments:
        days.setdefault(local_day(seg.start, zone), []).append(seg)
    return days


def plan(snap: Snapshot, reqs: Sequence[ExamRequest], patient: PatientContext,
         skip: Iterable[int] = ()) -> Plan | None:
    """One exam: the earliest. Several: the first day that fits them all at close times;
    if no day can (e.g. a 24-hour contrast gap), each exam at its earliest in turn."""
    skipped = frozenset(skip)
    if len(reqs) == 1:
        leg = earliest(snap, reqs[0], patient, skip=skipped)
        return None if leg is None else Plan(legs=(leg,), same_day=True)
    same_day = plan_same_day(snap, reqs, patient, skipped) if same_day_possible(reqs, snap.rules) else None
    return same_day or plan_sequential(snap, reqs, patient, skipped)


def plan_same_day(snap: Snapshot, reqs: Sequence[ExamRequest], patient: PatientContext,
                  skip: frozenset[int] = frozenset()) -> Plan | None:
    """The first day of the snapshot that fits every exam at close times (R6.1.5)."""
    for _day, segs in sorted(_by_day(snap).items()):
        found = _day_plan(snap, reqs, patient, segs, skip)
        if found is not None:
            return found
    return None


def plan_sequential(snap: Snapshot, reqs: Sequence[ExamRequest], patient: PatientContext,
                    skip: frozenset[int] = frozenset()) -> Plan | None:
    """Each exam at its earliest after the ones before it; of all orders, the one done soonest."""
    best: Plan | None = None
    for order in sequence_orders(reqs, snap.rules):
        legs: list[Leg] = []
        for req in order:
            leg = earliest(snap, req, patient, others=[x.placed() for x in legs], skip=skip)
            if leg is None:
                break
            legs.append(leg)
        else:
            done = max(leg.segment.end for leg in legs)
            if best is None or done < max(leg.segment.end for leg in best.legs):
                best = Plan(legs=tuple(legs), same_day=False)
    return best
