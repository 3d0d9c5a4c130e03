"""Hypothesis over the real database, SQLite and PostgreSQL: patients booking at the same time
into a tight calendar never overfill a segment and never get a conflicting pair of exams."""
from __future__ import annotations

import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import Session, select

from core.db import get_engine
from domain.booking.calendar import CalendarTemplate, Period
from domain.booking.defaults import DEFAULT_RULES
from domain.booking_tables import RoomSegment, SlotBooking
from services import booking
from services.booking import BookingRefused, BookRequest, PatientFacts
from services.booking_calendar import set_room_calendar
from tests.domain.test_booking_rules import violations
from domain.booking.feasibility import Placed
from tests.services.booking_support import NOW, make_order

CODES = ["CT-CHEST", "CT-ABD-C", "CT-HEAD-C", "MR-HEAD", "MR-ABD-C", "US-ABD", "US-PELVIS"]
TIGHT = CalendarTemplate(segment_minutes=30, periods=(
    Period(start=time(8), end=time(9, 30), device_capacity=2, staff_capacity=3),
    Period(start=time(14), end=time(15), device_capacity=3, staff_capacity=2, reserve_units=1)))
FACTS = PatientFacts(egfr=70, egfr_at=NOW - timedelta(days=1))


def tighten_calendars() -> None:
    with Session(get_engine()) as s:
        for room in ("CT1", "CT2", "MR1", "US1", "DX1"):
            set_room_calendar(s, room, TIGHT, "test")
        s.commit()


def attempt(accessions: list[str]) -> None:
    try:
        booking.book(BookRequest(accession_numbers=accessions, channel="centre", actor="t", facts=FACTS), now=NOW)
    except BookingRefused as err:
        # A refusal is a correct outcome when it says why; the invariants below judge the rest.
        assert err.reason


def check_invariants() -> None:
    with Session(get_engine()) as s:
        live = s.exec(select(SlotBooking).where(SlotBooking.state == "booked")).all()
        for seg in s.exec(select(RoomSegment)).all():
            mine = [b for b in live if b.segment_id == seg.id]
            assert seg.device_used == sum(b.device_units for b in mine) <= seg.device_capacity
            assert seg.staff_used == sum(b.staff_units for b in mine) <= seg.staff_capacity
        for _pid, group in itertools.groupby(sorted(live, key=lambda b: b.patient_id), key=lambda b: b.patient_id):
            items = [Placed(b.accession_number, DEFAULT_RULES.exam_rule(b.exam_code, b.modality), b.start_at, b.end_at,
                            b.campus) for b in group]
            assert violations(items, DEFAULT_RULES) == []
        active = s.exec(select(func.count()).select_from(SlotBooking).where(SlotBooking.active_accession != None)).one()  # noqa: E711
        assert active == len(live)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(patients=st.lists(st.lists(st.sampled_from(CODES), min_size=1, max_size=3, unique=True),
                         min_size=2, max_size=8),
       split=st.booleans())
def test_property_concurrent_bookings_keep_capacity_and_conflict_rules(database, patients, split):
    """`split`: a patient's exams are booked one by one from parallel desks, else as one plan."""
    if not getattr(test_property_concurrent_bookings_keep_capacity_and_conflict_rules, "_tight", None) == database:
        tighten_calendars()
        test_property_concurrent_bookings_keep_capacity_and_conflict_rules._tight = database
    jobs: list[list[str]] = []
    for codes in patients:
        pid = f"p-{uuid.uuid4().hex[:8]}"
        accs = []
        for code in codes:
            acc = f"A{uuid.uuid4().hex[:10]}"
            make_order(acc, code, patient_id=pid)
            accs.append(acc)
        jobs += [[a] for a in accs] if split else [accs]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(attempt, jobs))
    check_invariants()
