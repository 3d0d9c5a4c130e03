"""Booking through the database on SQLite and PostgreSQL: capacity taken safely, refusals
with reasons, change/cancel/no-show with their channel, versioned rules (R5.3, R6.1.5)."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.booking.defaults import DEFAULT_RULES
from domain.booking.rules import Channel, PatientType
from domain.booking_tables import NoShowRecord, RoomSegment, SlotBooking
from domain.tables import DomainEvent
from services import booking
from services.booking import BookingRefused, BookRequest, PatientFacts
from services.booking_calendar import active_rules, ensure_window, publish_rules
from tests.services.booking_support import NOW, fill_rooms, make_order

FRESH_EGFR = PatientFacts(egfr=80, egfr_at=NOW - timedelta(days=3))


def req(*accessions: str, channel: Channel = Channel.centre, facts: PatientFacts = PatientFacts(), **kw) -> BookRequest:
    return BookRequest(accession_numbers=list(accessions), channel=channel, actor="u-registrar", facts=facts, **kw)


def segment(seg_id: int) -> RoomSegment:
    with Session(get_engine()) as s:
        return s.get(RoomSegment, seg_id)


def open_window() -> None:
    with Session(get_engine()) as s:
        ensure_window(s, NOW, DEFAULT_RULES)
        s.commit()


def test_single_exam_gets_the_earliest_segment_and_uses_its_capacity(database):
    make_order("A1", "CT-CHEST")
    [b] = booking.book(req("A1"), now=NOW)
    # 08:00 is inside the outpatient 30-minute notice, so 08:30 local; CT1 before CT2.
    assert (b.room_id, b.start_at) == ("CT1", NOW + timedelta(minutes=30))
    assert b.channel == "centre" and b.rules_version == 1 and b.state == "booked"
    with Session(get_engine()) as s:
        row = s.get(SlotBooking, b.id)
        seg = s.get(RoomSegment, row.segment_id)
        assert (seg.device_used, seg.staff_used) == (1, 1)
        ev = s.exec(select(DomainEvent).where(DomainEvent.accession_number == "A1")).one()
        assert ev.kind == "appointment_booked" and ev.detail["channel"] == "centre"


def test_a_retried_booking_returns_the_same_booking(database):
    make_order("A1", "CT-CHEST")
    first = booking.book(req("A1"), now=NOW)
    again = booking.book(req("A1"), now=NOW)
    assert [b.id for b in again] == [b.id for b in first]
    assert segment(_segment_of(first[0].id)).device_used == 1


def _segment_of(booking_id: str) -> int:
    with Session(get_engine()) as s:
        return s.get(SlotBooking, booking_id).segment_id


def test_two_bookings_race_for_the_last_place_one_wins_one_is_told_why(database):
    make_order("A1", "CT-CHEST", patient_id="p-1")
    make_order("A2", "CT-CHEST", patient_id="p-2")
    open_window()
    with Session(get_engine()) as s:
        last = s.exec(select(RoomSegment).where(RoomSegment.room_id == "CT2").order_by(RoomSegment.start_at)
                      .offset(5)).first().id
    fill_rooms(["CT1", "CT2"], leave_free=last)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def attempt(acc: str) -> None:
        barrier.wait()
        try:
            results[acc] = booking.book(req(acc), now=NOW)
        except BookingRefused as err:
            results[acc] = err

    threads = [threading.Thread(target=attempt, args=(a,)) for a in ("A1", "A2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [v for v in results.values() if isinstance(v, list)]
    lost = [v for v in results.values() if isinstance(v, BookingRefused)]
    assert len(won) == 1 and len(lost) == 1, results
    assert won[0][0].start_at == segment(last).start_at
    assert "no feasible time" in lost[0].reason
    seg = segment(last)
    assert seg.device_used == seg.device_capacity and seg.staff_used == seg.staff_capacity


def test_choosing_a_quoted_segment_another_booking_just_filled_is_refused_clearly(database):
    make_order("A1", "CT-CHEST", patient_id="p-1")
    make_order("A2", "CT-CHEST", patient_id="p-2")
    open_window()
    _, quotes = booking.quote_slots("A1", Channel.centre, PatientFacts(), now=NOW)
    chosen = next(q for q in quotes if not q.refusals).segment_id
    fill_rooms(["CT1", "CT2"], leave_free=chosen)
    booking.book(req("A2", segment_ids={"A2": chosen}), now=NOW)
    with pytest.raises(BookingRefused) as err:
        booking.book(req("A1", segment_ids={"A1": chosen}), now=NOW)
    assert {r.code for r in err.value.reasons} == {"device_full", "staff_full"}


def test_one_patients_concurrent_bookings_never_break_a_conflict_rule(database):
    """Contrast CT and contrast MR booked at the same moment from two desks keep their 4-hour gap."""
    make_order("C1", "CT-ABD-C")
    make_order("M1", "MR-ABD-C")
    open_window()
    barrier = threading.Barrier(2)
    done: list = []

    def attempt(acc: str) -> None:
        barrier.wait()
        done.extend(booking.book(req(acc, facts=FRESH_EGFR), now=NOW))

    threads = [threading.Thread(target=attempt, args=(a,)) for a in ("C1", "M1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(done) == 2
    ct, mr = sorted(done, key=lambda b: b.start_at)
    assert ct.start_at < mr.start_at
    assert mr.start_at - ct.end_at >= timedelta(minutes=240) or ct.start_at - mr.end_at >= timedelta(minutes=240)


def test_several_exams_land_on_one_day_in_a_conflict_free_order(database):
    """Barium after abdominal CT; fasting exams first; preparation time between them (R6.1.5, R6.1.7)."""
    make_order("B1", "RF-BARIUM")
    make_order("C1", "CT-ABD-C")
    make_order("X1", "CT-CHEST")
    with Session(get_engine()) as s:  # an RF room for the barium meal
        from domain.tables import Room
        s.add(Room(id="RF1", name="Fluoro 1", campus="Main campus", modalities="RF", station_ae_title="RF1"))
        s.commit()
    legs = booking.book(req("B1", "C1", "X1", facts=FRESH_EGFR), now=NOW)
    by = {b.accession_number: b for b in legs}
    assert len({b.plan_id for b in legs}) == 1
    assert len({b.start_at.date() for b in legs}) == 1
    assert by["C1"].end_at <= by["B1"].start_at  # CT before barium
    assert max(by["C1"].end_at, by["B1"].end_at) <= by["X1"].start_at  # fasting exams first
    assert by["C1"].arrive_at == by["C1"].start_at - timedelta(minutes=30)
    assert any("fast" in p for p in by["C1"].preparation)


def test_contrast_without_a_recent_egfr_is_refused_with_the_reason(database):
    make_order("C1", "CT-ABD-C")
    with pytest.raises(BookingRefused) as err:
        booking.book(req("C1", facts=PatientFacts(egfr=80, egfr_at=NOW - timedelta(days=200))), now=NOW)
    assert [r.code for r in err.value.reasons] == ["egfr_missing"]
    with pytest.raises(BookingRefused) as err:
        booking.book(req("C1", facts=PatientFacts(egfr=20, egfr_at=NOW)), now=NOW)
    assert [r.code for r in err.value.reasons] == ["egfr_low"]


def test_emergency_patients_may_use_the_reserve_others_may_not(database):
    rules = DEFAULT_RULES
    with Session(get_engine()) as s:
        ensure_window(s, NOW, rules)
        s.commit()
    with Session(get_engine()) as s:
        first = s.exec(select(RoomSegment).where(RoomSegment.room_id == "US1").order_by(RoomSegment.start_at)
                       .offset(1)).first()
        first.reserve_units = 1
        first.device_used = first.device_capacity - 1
        first.staff_used = first.staff_capacity - 1
        s.add(first)
        s.commit()
        reserved_id, reserved_start = first.id, first.start_at
    make_order("U1", "US-ABD", patient_id="p-1")
    make_order("U2", "US-ABD", patient_id="p-2")
    [out] = booking.book(req("U1"), now=NOW)
    assert out.start_at > reserved_start  # the held-back unit is not offered to an outpatient
    er = booking.book(req("U2", channel=Channel.triage_desk, facts=PatientFacts(patient_type=PatientType.emergency),
                          not_before=reserved_start), now=NOW)
    assert _segment_of(er[0].id) == reserved_id


def test_cancel_gives_the_place_back_and_records_the_channel(database):
    make_order("A1", "CT-CHEST")
    [b] = booking.book(req("A1", channel=Channel.online), now=NOW - timedelta(hours=1))  # 07:00, online is open
    seg_id = _segment_of(b.id)
    out = booking.cancel(b.id, Channel.nurse_station, "u-nurse", "patient asked", now=NOW - timedelta(minutes=50))
    assert out.state == "cancelled"
    assert segment(seg_id).device_used == 0
    with Session(get_engine()) as s:
        row = s.get(SlotBooking, b.id)
        assert (row.channel, row.ended_channel, row.active_accession) == ("online", "nurse_station", None)
    again = booking.book(req("A1"), now=NOW)  # a cancelled order can be booked again
    assert again[0].id != b.id


def test_online_cannot_change_inside_its_cutoff_but_the_centre_can(database):
    make_order("A1", "CT-CHEST")
    [b] = booking.book(req("A1"), now=NOW)
    with pytest.raises(BookingRefused) as err:
        booking.cancel(b.id, Channel.online, "u-portal", now=NOW)
    assert err.value.reasons[0].code == "change_cutoff"
    moved = booking.change(b.id, Channel.centre, "u-registrar", PatientFacts(), not_before=NOW + timedelta(days=2),
                           now=NOW)
    assert moved.start_at >= NOW + timedelta(days=2) and moved.id != b.id
    assert segment(_segment_of(b.id)).device_used == 0
    assert [x.state for x in booking.bookings_of("A1")] == ["changed", "booked"]


def test_a_change_that_finds_no_time_keeps_the_old_booking(database):
    make_order("A1", "CT-CHEST")
    [b] = booking.book(req("A1"), now=NOW)
    with pytest.raises(BookingRefused):
        booking.change(b.id, Channel.centre, "u-registrar", PatientFacts(), not_before=NOW + timedelta(days=40), now=NOW)
    assert [x.state for x in booking.bookings_of("A1")] == ["booked"]
    assert segment(_segment_of(b.id)).device_used == 1


def test_three_no_shows_block_online_booking_but_not_the_centre(database):
    for i in range(4):
        make_order(f"A{i}", "CT-CHEST")
    for i in range(3):
        [b] = booking.book(req(f"A{i}"), now=NOW + timedelta(days=i))
        booking.record_no_show(b.id, "u-registrar", now=b.end_at + timedelta(minutes=5))
    with Session(get_engine()) as s:
        assert len(s.exec(select(NoShowRecord)).all()) == 3
    later = NOW + timedelta(days=5)
    with pytest.raises(BookingRefused) as err:
        booking.book(req("A3", channel=Channel.online), now=later)
    assert [r.code for r in err.value.reasons] == ["no_show_sanction"]
    assert booking.book(req("A3"), now=later)[0].channel == "centre"


def test_a_no_show_cannot_be_recorded_before_the_time(database):
    make_order("A1", "CT-CHEST")
    [b] = booking.book(req("A1"), now=NOW)
    with pytest.raises(booking.Invalid):
        booking.record_no_show(b.id, "u-registrar", now=NOW)


def test_published_rules_are_a_new_version_and_bookings_record_it(database):
    make_order("A1", "CT-CHEST")
    stricter = DEFAULT_RULES.model_copy(update={"patient_types": {
        **DEFAULT_RULES.patient_types,
        PatientType.outpatient: DEFAULT_RULES.patient_types[PatientType.outpatient].model_copy(
            update={"lead_minutes": 24 * 60})}})
    with Session(get_engine()) as s:
        published = publish_rules(s, stricter, "u-manager", "outpatients book a day ahead")
        s.commit()
        assert published.version == 2 and active_rules(s).version == 2
    [b] = booking.book(req("A1"), now=NOW)
    assert b.rules_version == 2 and b.start_at >= NOW + timedelta(days=1)


def test_quote_says_why_each_segment_is_refused(database):
    make_order("U1", "US-ABD")
    _, quotes = booking.quote_slots("U1", Channel.centre, PatientFacts(), now=NOW, limit=40)
    reasons = {q.start: {r.code for r in q.refusals} for q in quotes}
    assert reasons[NOW] == {"too_soon"}
    assert reasons[NOW + timedelta(minutes=30)] == set()
    late = [codes for start, codes in reasons.items() if start.hour >= 4]  # 12:00 local and later
    assert late and all("too_late_in_day" in c for c in late)


def test_the_receipt_tells_time_place_arrival_preparation_and_route(database):
    make_order("C1", "CT-ABD-C")
    make_order("X1", "CT-CHEST")
    legs = booking.book(req("C1", "X1", facts=FRESH_EGFR), now=NOW)
    text = booking.receipt_for_plan(legs[0].plan_id)
    assert text.startswith("张*, your imaging appointments:")
    assert "1. CT-ABD-C - 2030-01-07 08:30-09:00" in text and "Arrive by: 08:00" in text  # local time, 30 min prep
    assert "2. CT-CHEST" in text and "fast for 6 hours" in text
    assert "Route: Outpatient building" in text and "Main campus, CT" in text
