"""Booking, changing and cancelling exams, from any channel (R5.3.1-R5.3.4, R6.1.5).

One transaction per action, in this order:
1. bump the patient's lock row (a write first: SQLite takes its write lock here, PostgreSQL
   locks that patient's row), so the patient's other bookings cannot change under the
   conflict check;
2. read a snapshot and ask `domain.booking.search` for a plan;
3. take capacity per segment with `UPDATE ... WHERE used + units <= capacity`; a segment
   another patient filled meanwhile updates no row, and the plan is made again;
4. write the bookings and their timeline events, commit.
The refusal a caller gets says why (`BookingRefused.reasons`).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlmodel import Session, col, select

from activities.events import EventInput, write_event
from core.db import get_engine
from domain.booking.calendar import RoomView, SegmentView
from domain.booking.receipt import ReceiptLeg, render_receipt
from domain.booking.feasibility import PatientContext, Placed, Refusal, request_refusals, slot_refusals
from domain.booking.rules import BookingRules, Channel, ExamTypeRule, MrScreening, PatientType
from domain.booking.search import (
    ExamRequest,
    Leg,
    Plan,
    SlotQuote,
    Snapshot,
    earliest,
    plan_same_day,
    quote,
    same_day_possible,
    sequence_orders,
)
from domain.booking_tables import BookingPatientLock, NoShowRecord, RoomSegment, SlotBooking
from domain.scheduling import as_utc
from domain.queueing.calling import mask_name
from domain.tables import DomainEvent, ExamOrder, Patient, Room
from services.booking_calendar import active_rules, closures_between, dialect_insert, ensure_window, room_views
from services.errors import Conflict, Invalid, NotFound

ATTEMPTS = 8
# Counter updates need not refresh objects in the session (none are loaded): skip the ORM's sync.
NO_SYNC = {"synchronize_session": False}
SnapFn = Callable[[list[SegmentView]], Snapshot]
FIRST_PAGE = 48
MAX_PAGE = 800
LIVE = "booked"


class BookingRefused(Conflict):
    """No feasible time, with every reason found (request-level, or per segment when quoted)."""

    def __init__(self, reason: str, reasons: Sequence[Refusal] = ()) -> None:
        super().__init__(reason)
        self.reasons = list(reasons)


class PatientFacts(BaseModel):
    """What the booking desk knows that the order does not (R5.3.4, R6.1.4)."""

    patient_type: PatientType = PatientType.outpatient
    egfr: float | None = Field(None, description="mL/min/1.73m2, for contrast exams")
    egfr_at: datetime | None = None
    mr_screening: MrScreening = "not_done"


class BookRequest(BaseModel):
    accession_numbers: list[str] = Field(min_length=1, max_length=6)
    channel: Channel
    actor: str
    facts: PatientFacts = PatientFacts()
    not_before: datetime | None = None
    segment_ids: dict[str, int] = Field(default_factory=dict, description="Accession -> chosen segment")


class BookingOut(BaseModel):
    id: str
    accession_number: str
    patient_id: str
    plan_id: str
    room_id: str
    room_name: str
    station_ae_title: str
    campus: str
    start_at: datetime
    end_at: datetime
    arrive_at: datetime
    exam_code: str
    state: str
    channel: str
    rules_version: int
    preparation: list[str]


def preparation_notes(exam: ExamTypeRule) -> list[str]:
    """What the receipt tells the patient to do before coming (R5.3.5)."""
    notes = []
    if exam.fasting:
        notes.append("fast for 6 hours before the exam")
    if exam.prep_minutes:
        notes.append(f"arrive {exam.prep_minutes} minutes early for preparation")
    if exam.contrast in ("iodinated", "gadolinium"):
        notes.append(f"{exam.contrast} contrast: bring your latest kidney function result; consent at check-in")
    if exam.contrast == "barium":
        notes.append("barium meal: do not eat after midnight")
    if exam.requires_mr_screening:
        notes.append("MR: remove all metal; tell staff about implants, pacemakers or pregnancy")
    return notes


# ---- reads ---------------------------------------------------------------------------------

def _orders(session: Session, accessions: Sequence[str]) -> list[ExamOrder]:
    orders = []
    for acc in accessions:
        order = session.get(ExamOrder, acc)
        if order is None:
            raise NotFound(f"no order {acc}")
        orders.append(order)
    if len({o.patient_id for o in orders}) != 1:
        raise Invalid("exams booked together must belong to one patient")
    if len(set(accessions)) != len(accessions):
        raise Invalid("an accession number is listed twice")
    return orders


def _placed(b: SlotBooking, rules: BookingRules) -> Placed:
    return Placed(label=b.accession_number, exam=rules.exam_rule(b.exam_code, b.modality),
                  start=as_utc(b.start_at), end=as_utc(b.end_at), campus=b.campus)


def _live_of_patient(session: Session, patient_id: str) -> list[SlotBooking]:
    return list(session.exec(select(SlotBooking).where(
        SlotBooking.patient_id == patient_id, col(SlotBooking.active_accession).is_not(None))))


def patient_context(session: Session, patient_id: str, facts: PatientFacts, rules: BookingRules, now: datetime,
                    exclude: Sequence[str] = (), live: Sequence[SlotBooking] | None = None) -> PatientContext:
    """The patient's live bookings (minus `exclude`d accessions) and any no-show sanction;
    `live`: the patient's live bookings when the caller has read them already."""
    horizon = now - timedelta(days=2)
    rows = _live_of_patient(session, patient_id) if live is None else live
    existing = tuple(_placed(b, rules) for b in rows
                     if b.state == LIVE and as_utc(b.end_at) >= horizon and b.accession_number not in exclude)
    ns = rules.no_show
    misses = session.exec(select(NoShowRecord.missed_start).where(
        NoShowRecord.patient_id == patient_id,
        NoShowRecord.missed_start >= now - timedelta(days=ns.lookback_days))).all()
    blocked_until = None
    if len(misses) >= ns.threshold:
        blocked_until = max(as_utc(m) for m in misses) + timedelta(days=ns.block_days)
    return PatientContext(patient_type=facts.patient_type, existing=existing, egfr=facts.egfr,
                          egfr_at=as_utc(facts.egfr_at) if facts.egfr_at else None, mr_screening=facts.mr_screening,
                          blocked_channels=ns.blocked_channels, blocked_until=blocked_until)


def _segments(session: Session, rooms: Sequence[str], start: datetime, end: datetime, *, min_units: int = 1,
              free_only: bool = True, after_id: tuple[datetime, str] | None = None,
              limit: int | None = None, only: Sequence[int] | None = None) -> list[SegmentView]:
    """Segments of `rooms` starting in [start, end], by (start, room); optionally only those with room."""
    seg = RoomSegment
    q = select(seg.id, seg.room_id, seg.start_at, seg.end_at, seg.device_capacity, seg.staff_capacity,
               seg.device_used, seg.staff_used, seg.reserve_units).where(
        col(seg.room_id).in_(rooms), seg.start_at >= start, seg.start_at <= end)
    if free_only:
        q = q.where(seg.device_used + min_units <= seg.device_capacity, seg.staff_used + min_units <= seg.staff_capacity)
    if only is not None:
        q = q.where(col(seg.id).in_(only))
    if after_id is not None:
        q = q.where((seg.start_at > after_id[0]) | ((seg.start_at == after_id[0]) & (seg.room_id > after_id[1])))
    q = q.order_by(seg.start_at, seg.room_id)
    if limit:
        q = q.limit(limit)
    return [SegmentView(r[0], r[1], as_utc(r[2]), as_utc(r[3]), r[4], r[5], r[6], r[7], r[8])
            for r in session.exec(q).all()]


def _window_end(rules: BookingRules, facts: PatientFacts, now: datetime) -> datetime:
    return now + timedelta(days=rules.patient_rule(facts.patient_type).window_days)


def _find_plan(session: Session, reqs: list[ExamRequest], patient: PatientContext, rules: BookingRules,
               rooms: dict[str, RoomView], now: datetime, not_before: datetime, end: datetime,
               chosen: dict[str, int]) -> Plan | None:
    """Read as few segments as the answer needs: growing pages for one exam, one day at a time
    for several (the whole window only when no single day fits them)."""
    capable = sorted({rid for r in reqs for rid, room in rooms.items() if room.can_do(r.exam.code, r.exam.modality)})
    if not capable:
        return None
    min_units = min(min(r.exam.device_units, r.exam.staff_units) for r in reqs)
    closures = closures_between(session, not_before, end + timedelta(days=1))

    def snap(segs: list[SegmentView]) -> Snapshot:
        return Snapshot(segs, rooms, closures, rules, now)

    if chosen:
        segs = _segments(session, capable, not_before, end, only=list(chosen.values()), free_only=False)
        return _plan_chosen(reqs, segs, patient, snap(segs), chosen)
    if len(reqs) > 1:
        if same_day_possible(reqs, rules):
            zone = ZoneInfo(rules.timezone)
            day = datetime.combine(not_before.astimezone(zone).date(), time.min, zone)
            while day <= end:
                nxt = day + timedelta(days=1)
                segs = _segments(session, capable, max(day, not_before), min(nxt - timedelta(microseconds=1), end),
                                 min_units=min_units)
                found = plan_same_day(snap(segs), reqs, patient) if segs else None
                if found is not None:
                    return found
                day = nxt
        return _sequential(session, reqs, patient, rooms, not_before, end, snap)
    leg = _earliest_paged(session, reqs[0], patient, rooms, not_before, end, snap, ())
    return None if leg is None else Plan(legs=(leg,), same_day=True)


def _earliest_paged(session: Session, req: ExamRequest, patient: PatientContext, rooms: dict[str, RoomView],
                    not_before: datetime, end: datetime, snap: SnapFn, others: Sequence[Placed]) -> Leg | None:
    """The exam's earliest feasible segment, reading free segments in growing pages."""
    capable = sorted(rid for rid, room in rooms.items() if room.can_do(req.exam.code, req.exam.modality))
    units = min(req.exam.device_units, req.exam.staff_units)
    cursor: tuple[datetime, str] | None = None
    page = FIRST_PAGE
    while capable:
        segs = _segments(session, capable, not_before, end, min_units=units, after_id=cursor, limit=page)
        if not segs:
            return None
        found = earliest(snap(segs), req, patient, others=others)
        if found is not None:
            return found
        cursor, page = (segs[-1].start, segs[-1].room_id), min(page * 2, MAX_PAGE)
    return None


def _sequential(session: Session, reqs: list[ExamRequest], patient: PatientContext, rooms: dict[str, RoomView],
                not_before: datetime, end: datetime, snap: SnapFn) -> Plan | None:
    """Exams that cannot share a day: each at its earliest after the others; the order done soonest."""
    best: Plan | None = None
    for order in sequence_orders(reqs, snap([]).rules):
        legs: list[Leg] = []
        for req in order:
            leg = _earliest_paged(session, req, patient, rooms, not_before, end, snap, [x.placed() for x in legs])
            if leg is None:
                break
            legs.append(leg)
        else:
            if best is None or max(x.segment.end for x in legs) < max(x.segment.end for x in best.legs):
                best = Plan(legs=tuple(legs), same_day=False)
    return best


def _plan_chosen(reqs: list[ExamRequest], segs: list[SegmentView], patient: PatientContext, snap: Snapshot,
                 chosen: dict[str, int]) -> Plan:
    """The caller picked the segments (from a quote): check them all, refuse with reasons."""
    by_id = {s.id: s for s in segs}
    legs: list[Leg] = []
    reasons: list[Refusal] = []
    for r in reqs:
        seg = by_id.get(chosen.get(r.label, -1))
        if seg is None:
            raise Invalid(f"no chosen segment for {r.label} (or it is outside the booking window)")
        room = snap.rooms[seg.room_id]
        found = slot_refusals(r.exam, seg, room, patient, snap.rules, snap.now, snap.closures_of(seg.room_id),
                              [leg.placed() for leg in legs])
        reasons += found
        legs.append(Leg(r.label, r.exam, seg, room.campus))
    if reasons:
        raise BookingRefused("the chosen time cannot be booked", reasons)
    return Plan(legs=tuple(legs), same_day=len({leg.segment.start.date() for leg in legs}) == 1)


# ---- writes --------------------------------------------------------------------------------

def _lock_patient(session: Session, patient_id: str) -> None:
    stmt = dialect_insert(session, BookingPatientLock).values(patient_id=patient_id, bumps=1)
    session.execute(stmt.on_conflict_do_update(index_elements=["patient_id"],
                                               set_={"bumps": BookingPatientLock.bumps + 1}))


def _take(session: Session, seg_id: int, exam: ExamTypeRule, hold: int) -> bool:
    """Take the exam's units of the segment if they are still free: one conditional UPDATE."""
    s = RoomSegment
    res = session.execute(update(s).where(
        s.id == seg_id,
        s.device_used + exam.device_units + s.reserve_units * hold <= s.device_capacity,
        s.staff_used + exam.staff_units + s.reserve_units * hold <= s.staff_capacity,
    ).values(device_used=s.device_used + exam.device_units, staff_used=s.staff_used + exam.staff_units),
        execution_options=NO_SYNC)
    return res.rowcount == 1


def _give_back(session: Session, seg_id: int, device_units: int, staff_units: int) -> None:
    s = RoomSegment
    session.execute(update(s).where(s.id == seg_id).values(
        device_used=s.device_used - device_units, staff_used=s.staff_used - staff_units), execution_options=NO_SYNC)


def _out(b: SlotBooking, room: Room, rules: BookingRules) -> BookingOut:
    exam = rules.exam_rule(b.exam_code, b.modality)
    return BookingOut(id=b.id, accession_number=b.accession_number, patient_id=b.patient_id, plan_id=b.plan_id,
                      room_id=b.room_id, room_name=room.name, station_ae_title=room.station_ae_title, campus=b.campus,
                      start_at=as_utc(b.start_at), end_at=as_utc(b.end_at), arrive_at=as_utc(b.arrive_at),
                      exam_code=b.exam_code, state=b.state, channel=b.channel, rules_version=b.rules_version,
                      preparation=preparation_notes(exam))


def _book_in(session: Session, req: BookRequest, now: datetime, exclude_existing: Sequence[str] = ()) -> list[BookingOut]:
    """The booking steps inside an open transaction whose patient lock is already taken."""
    rules = active_rules(session)
    orders = _orders(session, req.accession_numbers)
    patient_id = orders[0].patient_id
    # One read serves both the retry check and the conflict rules: a booking is live while
    # `active_accession` is set, and every requested order is this patient's (`_orders`).
    mine = _live_of_patient(session, patient_id)
    live = {b.accession_number: b for b in mine if b.active_accession in req.accession_numbers}
    if live and not exclude_existing:
        if set(live) == set(req.accession_numbers):  # a retried request: the same bookings again
            return [_out(b, session.get(Room, b.room_id), rules) for b in live.values()]
        raise BookingRefused("already booked: " + ", ".join(sorted(live)) + " (change those instead)")
    reqs = [ExamRequest(o.accession_number, rules.exam_rule(o.procedure_code, o.modality)) for o in orders]
    patient = patient_context(session, patient_id, req.facts, rules, now, exclude=exclude_existing, live=mine)
    refused = request_refusals([r.exam for r in reqs], patient, req.channel, rules, now)
    if refused:
        raise BookingRefused("; ".join(r.message for r in refused), refused)
    ensure_window(session, now, rules)
    rooms = room_views(session)
    not_before = max(now, as_utc(req.not_before)) if req.not_before else now
    hold = 0 if rules.patient_rule(req.facts.patient_type).uses_reserve else 1
    end = _window_end(rules, req.facts, now)
    for _ in range(ATTEMPTS):
        found = _find_plan(session, reqs, patient, rules, rooms, now, not_before, end, req.segment_ids)
        if found is None:
            raise BookingRefused(f"no feasible time within {rules.patient_rule(req.facts.patient_type).window_days} "
                                 f"days for {', '.join(req.accession_numbers)}; ask for a quote to see why")
        taken: list = []
        for leg in sorted(found.legs, key=lambda leg: leg.segment.id):  # one lock order: no deadlocks
            if not _take(session, leg.segment.id, leg.exam, hold):
                break
            taken.append(leg)
        if len(taken) == len(found.legs):
            return _write(session, req, found, patient_id, rules, rooms, now)
        for leg in taken:
            _give_back(session, leg.segment.id, leg.exam.device_units, leg.exam.staff_units)
        if req.segment_ids:
            raise BookingRefused("the chosen time was just taken by another booking; ask for a new quote",
                                 [Refusal(code="taken", message="filled by a booking made a moment ago")])
    raise BookingRefused("could not book: the times kept filling up; try again")


def _write(session: Session, req: BookRequest, found: Plan, patient_id: str, rules: BookingRules,
           rooms: dict[str, RoomView], now: datetime) -> list[BookingOut]:
    plan_id = f"plan-{uuid.uuid4().hex[:16]}"
    out = []
    for leg in found.legs:
        room = session.get(Room, leg.segment.room_id)
        b = SlotBooking(
            id=f"bk-{uuid.uuid4().hex[:16]}", accession_number=leg.label, active_accession=leg.label,
            patient_id=patient_id, plan_id=plan_id, segment_id=leg.segment.id, room_id=room.id, campus=room.campus,
            start_at=leg.segment.start, end_at=leg.segment.end,
            arrive_at=leg.segment.start - timedelta(minutes=leg.exam.prep_minutes), exam_code=leg.exam.code,
            modality=leg.exam.modality, patient_type=req.facts.patient_type.value, device_units=leg.exam.device_units,
            staff_units=leg.exam.staff_units, channel=req.channel.value, rules_version=rules.version,
            created_by=req.actor, created_at=now)
        session.add(b)
        # A new booking ID makes the event key new: insert without write_event's lookup.
        session.add(DomainEvent(
            id=f"{b.id}/booked", accession_number=leg.label, at=now, actor=req.actor, kind="appointment_booked",
            summary=f"booked {room.name} {leg.segment.start.isoformat()} via {req.channel.value}",
            detail={"booking_id": b.id, "room_id": room.id, "start_at": leg.segment.start.isoformat(),
                    "channel": req.channel.value, "rules_version": rules.version}))
        out.append(_out(b, room, rules))
    session.flush()
    return out


def book(req: BookRequest, now: datetime | None = None) -> list[BookingOut]:
    """Book one exam at its earliest time, or several at close times on one day."""
    now = now or datetime.now(timezone.utc)
    with Session(get_engine(), expire_on_commit=False) as s:
        # Loading the orders here also serves `_orders` below from the session, without a query.
        orders = s.exec(select(ExamOrder).where(col(ExamOrder.accession_number).in_(req.accession_numbers))).all()
        patient_id = next((o.patient_id for o in orders if o.accession_number == req.accession_numbers[0]), None)
        if patient_id is None:
            raise NotFound(f"no order {req.accession_numbers[0]}")
        # The lock is the transaction's first write: SQLite takes its write lock here (a plain
        # SELECT before it holds none), PostgreSQL locks the patient's row.
        _lock_patient(s, patient_id)
        out = _book_in(s, req, now)
        s.commit()
        return out


def _end_booking(session: Session, b: SlotBooking, state: str, channel: Channel, actor: str, reason: str,
                 now: datetime) -> None:
    if state != "no_show":  # a missed place is in the past: nothing to give back
        _give_back(session, b.segment_id, b.device_units, b.staff_units)
    b.state, b.active_accession = state, None
    b.ended_channel, b.ended_by, b.ended_at, b.ended_reason = channel.value, actor, now, reason
    session.add(b)
    write_event(session, EventInput(
        key=f"{b.id}/{state}", accession_number=b.accession_number, at=now, actor=actor, kind=f"appointment_{state}",
        summary=f"appointment {state.replace('_', ' ')} via {channel.value}" + (f": {reason}" if reason else ""),
        detail={"booking_id": b.id, "channel": channel.value}))


def _live_booking(session: Session, booking_id: str, channel: Channel, rules: BookingRules, now: datetime,
                  action: str) -> SlotBooking:
    b = session.get(SlotBooking, booking_id)
    if b is None:
        raise NotFound(f"no booking {booking_id}")
    if b.state != LIVE:
        raise Conflict(f"booking {booking_id} is {b.state}, not booked")
    cutoff = rules.channel_rule(channel).change_cutoff_minutes
    if cutoff and as_utc(b.start_at) - now < timedelta(minutes=cutoff):
        raise BookingRefused(f"{channel.value} cannot {action} within {cutoff} minutes of the exam; ask the centre",
                             [Refusal(code="change_cutoff", message=f"{channel.value}: {cutoff} min cutoff")])
    return b


def _locked(booking_id: str) -> tuple[Session, SlotBooking]:
    s = Session(get_engine(), expire_on_commit=False)
    b = s.get(SlotBooking, booking_id)
    if b is None:
        s.close()
        raise NotFound(f"no booking {booking_id}")
    patient_id = b.patient_id
    s.rollback()
    _lock_patient(s, patient_id)
    s.expire_all()
    return s, s.get(SlotBooking, booking_id)


def cancel(booking_id: str, channel: Channel, actor: str, reason: str = "", now: datetime | None = None) -> BookingOut:
    now = now or datetime.now(timezone.utc)
    s, _ = _locked(booking_id)
    with s:
        rules = active_rules(s)
        b = _live_booking(s, booking_id, channel, rules, now, "cancel")
        _end_booking(s, b, "cancelled", channel, actor, reason, now)
        out = _out(b, s.get(Room, b.room_id), rules)
        s.commit()
        return out


def change(booking_id: str, channel: Channel, actor: str, facts: PatientFacts, *, segment_id: int | None = None,
           not_before: datetime | None = None, reason: str = "", now: datetime | None = None) -> BookingOut:
    """Move a booking in one transaction: release the old place, book the new one; if no new
    time is found the transaction rolls back and the old booking stands."""
    now = now or datetime.now(timezone.utc)
    s, _ = _locked(booking_id)
    with s:
        rules = active_rules(s)
        old = _live_booking(s, booking_id, channel, rules, now, "change")
        req = BookRequest(accession_numbers=[old.accession_number], channel=channel, actor=actor, facts=facts,
                          not_before=not_before, segment_ids={old.accession_number: segment_id} if segment_id else {})
        _end_booking(s, old, "changed", channel, actor, reason, now)
        s.flush()
        out = _book_in(s, req, now, exclude_existing=[old.accession_number])
        s.commit()
        return out[0]


def record_no_show(booking_id: str, actor: str, now: datetime | None = None) -> BookingOut:
    """The patient did not come: the place is gone (it was in the past), the miss counts (R5.3.4)."""
    now = now or datetime.now(timezone.utc)
    s, _ = _locked(booking_id)
    with s:
        rules = active_rules(s)
        b = s.get(SlotBooking, booking_id)
        if b.state != LIVE:
            raise Conflict(f"booking {booking_id} is {b.state}, not booked")
        if as_utc(b.start_at) > now:
            raise Invalid("a no-show is recorded after the booked time, not before")
        _end_booking(s, b, "no_show", Channel.centre, actor, "", now)
        s.add(NoShowRecord(booking_id=b.id, patient_id=b.patient_id, accession_number=b.accession_number,
                           missed_start=b.start_at, recorded_by=actor))
        out = _out(b, s.get(Room, b.room_id), rules)
        s.commit()
        return out


def quote_slots(accession_number: str, channel: Channel, facts: PatientFacts, *, not_before: datetime | None = None,
                limit: int = 20, now: datetime | None = None) -> tuple[list[Refusal], list[SlotQuote]]:
    """Request-level refusals and the first `limit` segments with why each is or is not bookable."""
    now = now or datetime.now(timezone.utc)
    with Session(get_engine(), expire_on_commit=False) as s:
        rules = active_rules(s)
        order = _orders(s, [accession_number])[0]
        req = ExamRequest(order.accession_number, rules.exam_rule(order.procedure_code, order.modality))
        patient = patient_context(s, order.patient_id, facts, rules, now, exclude=[accession_number])
        refused = request_refusals([req.exam], patient, channel, rules, now)
        ensure_window(s, now, rules)
        s.commit()
        rooms = room_views(s)
        capable = [rid for rid, room in rooms.items() if room.can_do(req.exam.code, req.exam.modality)]
        start = max(now, as_utc(not_before)) if not_before else now
        segs = _segments(s, capable, start, _window_end(rules, facts, now) + timedelta(days=1), free_only=False,
                         limit=limit)
        snap = Snapshot(segs, rooms, closures_between(s, start, start + timedelta(days=60)), rules, now)
        return refused, quote(snap, req, patient, limit)


def bookings_of(accession_number: str | None = None, patient_id: str | None = None) -> list[BookingOut]:
    with Session(get_engine(), expire_on_commit=False) as s:
        rules = active_rules(s)
        q = select(SlotBooking).order_by(SlotBooking.created_at)
        if accession_number:
            q = q.where(SlotBooking.accession_number == accession_number)
        if patient_id:
            q = q.where(SlotBooking.patient_id == patient_id)
        return [_out(b, s.get(Room, b.room_id), rules) for b in s.exec(q)]


def receipt_for_plan(plan_id: str) -> str:
    """The receipt of the live bookings made together as `plan_id` (R5.3.3, R5.3.5)."""
    with Session(get_engine(), expire_on_commit=False) as s:
        rules = active_rules(s)
        rows = s.exec(select(SlotBooking).where(SlotBooking.plan_id == plan_id, SlotBooking.state == LIVE)).all()
        if not rows:
            raise NotFound(f"no live bookings in plan {plan_id}")
        patient = s.get(Patient, rows[0].patient_id)
        legs = [ReceiptLeg(exam_code=b.exam_code, start=as_utc(b.start_at), end=as_utc(b.end_at),
                           arrive=as_utc(b.arrive_at), campus=b.campus, room_name=s.get(Room, b.room_id).name,
                           preparation=preparation_notes(rules.exam_rule(b.exam_code, b.modality)),
                           route=rules.campus_routes.get(b.campus, "")) for b in rows]
        return render_receipt(mask_name(patient.name) if patient else "", legs, rules.timezone)
