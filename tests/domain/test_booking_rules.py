"""The pure booking domain: rule versions, calendars, refusals with reasons, search and the
same-day planner, plus hypothesis properties (R5.3.1, R5.3.4, R6.1.5, R6.1.7)."""
from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.booking.calendar import CalendarTemplate, Closure, Period, RoomView, SegmentView, segments_for_day
from domain.booking.defaults import DEFAULT_RULES
from domain.booking.feasibility import PatientContext, Placed, pair_refusals, request_refusals, slot_refusals
from domain.booking.rules import BookingRules, Channel, PatientType
from domain.booking.search import ExamRequest, Snapshot, earliest, plan

NOW = datetime(2030, 1, 7, 0, 0, tzinfo=timezone.utc)  # Monday 08:00 in Shanghai
R = DEFAULT_RULES
OUT = PatientContext(patient_type=PatientType.outpatient)


def exam(code: str):
    return R.exam_rule(code, {"CT": "CT", "MR": "MR", "US": "US", "RF": "RF"}[code.split("-")[0]])


def rooms(*specs: tuple[str, str, str]) -> dict[str, RoomView]:
    return {rid: RoomView(rid, campus, frozenset(mods.split())) for rid, campus, mods in specs}


def day_segments(room_ids, days=2, cap=2, first_id=1) -> list[SegmentView]:
    tmpl = CalendarTemplate(segment_minutes=30, periods=(
        Period(start=time(8), end=time(12), device_capacity=cap, staff_capacity=cap),
        Period(start=time(13, 30), end=time(17, 30), device_capacity=cap, staff_capacity=cap)))
    out, n = [], first_id
    for d in range(days):
        for rid in room_ids:
            for s in segments_for_day(tmpl, date(2030, 1, 7) + timedelta(days=d), "Asia/Shanghai"):
                out.append(SegmentView(n, rid, s.start, s.end, s.device_capacity, s.staff_capacity))
                n += 1
    return sorted(out, key=lambda s: (s.start, s.room_id))


ALL_ROOMS = rooms(("CT1", "A", "CT"), ("MR1", "A", "MR"), ("US1", "A", "US"), ("RF1", "A", "RF"), ("CT9", "B", "CT"))


def snap(segs=None, closures=(), rules=R) -> Snapshot:
    return Snapshot(segs if segs is not None else day_segments(list(ALL_ROOMS)), ALL_ROOMS, closures, rules, NOW)


# ---- rules and calendars ---------------------------------------------------------------------

def test_rules_round_trip_as_json_and_keys_must_match_codes():
    again = BookingRules.model_validate(R.model_dump(mode="json"))
    assert again == R
    with pytest.raises(ValueError, match="differs from its code"):
        BookingRules(version=1, exam_types={"X": R.exam_types["CT-CHEST"]})


def test_derived_tags_and_defaults():
    ct = exam("CT-ABD-C")
    assert {"modality:CT", "contrast", "contrast:iodinated", "fasting", "region:abdomen"} <= ct.all_tags
    assert ct.requires_egfr and not ct.requires_mr_screening
    assert exam("MR-HEAD").requires_mr_screening and not exam("MR-HEAD").requires_egfr
    assert R.exam_rule("CT-UNKNOWN", "CT").code == "*CT"  # the modality's default


def test_segments_follow_local_periods_and_weekdays():
    tmpl = CalendarTemplate(periods=(Period(weekdays=frozenset({0}), start=time(8), end=time(9, 15),
                                            device_capacity=3, staff_capacity=1),))
    segs = segments_for_day(tmpl, date(2030, 1, 7), "Asia/Shanghai")  # a Monday
    assert [s.start.strftime("%H:%M") for s in segs] == ["00:00", "00:30"]  # 08:00, 08:30 local; 09:00 won't fit
    assert segments_for_day(tmpl, date(2030, 1, 8), "Asia/Shanghai") == []
    with pytest.raises(ValueError):
        Period(start=time(9), end=time(8), device_capacity=1, staff_capacity=1)


# ---- refusals ------------------------------------------------------------------------------

def seg(start: datetime, room="CT1", used=0, cap=2, staff_used=0, staff_cap=2, reserve=0, sid=1) -> SegmentView:
    return SegmentView(sid, room, start, start + timedelta(minutes=30), cap, staff_cap, used, staff_used, reserve)


def test_each_segment_refusal_names_its_reason():
    ct = exam("CT-CHEST")
    at = NOW + timedelta(hours=1)
    def codes(s, **kw):
        return {r.code for r in slot_refusals(ct, s, ALL_ROOMS[s.room_id], kw.pop("patient", OUT), R, NOW, **kw)}
    assert codes(seg(at)) == set()
    assert codes(seg(NOW)) == {"too_soon"}
    assert codes(seg(at, room="MR1")) == {"room_cannot"}
    assert codes(seg(at, used=2)) == {"device_full"}
    assert codes(seg(at, staff_used=2)) == {"staff_full"}
    assert codes(seg(at, used=1, reserve=1)) == {"reserved"}
    assert codes(seg(at, used=1, reserve=1), patient=PatientContext(patient_type=PatientType.emergency)) == set()
    assert codes(seg(NOW + timedelta(days=15))) == {"outside_window"}
    assert codes(seg(at), closures=[Closure("CT1", at, at + timedelta(hours=1), "tube change")]) == {"closed"}
    assert {r.code for r in slot_refusals(exam("US-ABD"), seg(NOW + timedelta(hours=5), room="US1"),
                                          ALL_ROOMS["US1"], OUT, R, NOW)} == {"too_late_in_day"}


def placed(code, start, campus="A", label=None) -> Placed:
    return Placed(label or code, exam(code), start, start + timedelta(minutes=30), campus)


def test_pair_rules_overlap_travel_order_and_gap():
    t = NOW + timedelta(hours=1)
    assert [r.code for r in pair_refusals(placed("CT-CHEST", t), placed("US-PELVIS", t + timedelta(minutes=30)), R)] \
        == ["overlap"]  # pelvic US needs 45 min preparation after the CT
    assert pair_refusals(placed("CT-CHEST", t), placed("CT-HEAD-C", t + timedelta(minutes=30), "B"), R)[0].code == "overlap"
    assert not pair_refusals(placed("CT-CHEST", t), placed("CT-CHEST", t + timedelta(hours=1), "B", "x"), R)
    barium_first = pair_refusals(placed("RF-BARIUM", t), placed("CT-ABD-C", t + timedelta(hours=2)), R)
    assert "conflict:barium-after-abdominal-ct" in {r.code for r in barium_first}
    next_day = pair_refusals(placed("RF-BARIUM", t), placed("CT-ABD", t + timedelta(days=1)), R)
    assert not next_day  # the order rule is about one day
    gap = pair_refusals(placed("CT-ABD-C", t), placed("MR-ABD-C", t + timedelta(hours=3)), R)
    assert {r.code for r in gap} == {"conflict:iodinated-gadolinium-gap"}
    assert not pair_refusals(placed("CT-ABD-C", t), placed("MR-ABD-C", t + timedelta(hours=5)), R)
    assert {r.code for r in pair_refusals(placed("CT-CHEST", t), placed("US-ABD", t + timedelta(hours=1)), R)} \
        == {"conflict:fasting-first"}


def test_request_refusals_channel_hours_rights_sanction_egfr_and_mr():
    night = datetime(2030, 1, 7, 15, 0, tzinfo=timezone.utc)  # 23:00 local
    assert [r.code for r in request_refusals([exam("CT-CHEST")], OUT, Channel.online, R, night)] == ["channel_closed"]
    er = PatientContext(patient_type=PatientType.emergency)
    assert [r.code for r in request_refusals([exam("CT-CHEST")], er, Channel.online, R, NOW)] == ["channel_not_allowed"]
    banned = PatientContext(patient_type=PatientType.outpatient, blocked_channels=frozenset({Channel.online}),
                            blocked_until=NOW + timedelta(days=1))
    assert [r.code for r in request_refusals([exam("CT-CHEST")], banned, Channel.online, R, NOW)] == ["no_show_sanction"]
    assert not request_refusals([exam("CT-CHEST")], banned, Channel.centre, R, NOW)
    unsafe = PatientContext(patient_type=PatientType.outpatient, mr_screening="contraindicated")
    assert [r.code for r in request_refusals([exam("MR-HEAD")], unsafe, Channel.centre, R, NOW)] == ["mr_unsafe"]
    ok = PatientContext(patient_type=PatientType.outpatient, egfr=60, egfr_at=NOW - timedelta(days=1))
    assert not request_refusals([exam("CT-ABD-C")], ok, Channel.centre, R, NOW)


# ---- search --------------------------------------------------------------------------------

def test_earliest_skips_refused_segments_and_respects_existing_bookings():
    s = snap()
    leg = earliest(s, ExamRequest("A", exam("CT-CHEST")), OUT)
    assert leg.segment.start == NOW + timedelta(minutes=30) and leg.segment.room_id == "CT1"
    busy = PatientContext(patient_type=PatientType.outpatient,
                          existing=(placed("CT-ABD-C", NOW + timedelta(minutes=30)),))
    leg = earliest(s, ExamRequest("M", exam("MR-ABD-C")), busy)
    assert leg.segment.start >= NOW + timedelta(minutes=60 + 240)


def test_several_exams_one_day_shortest_span_in_allowed_order():
    reqs = [ExamRequest("B", exam("RF-BARIUM")), ExamRequest("C", exam("CT-ABD-C")), ExamRequest("X", exam("CT-CHEST"))]
    p = plan(snap(), reqs, OUT)
    by = {leg.label: leg.segment for leg in p.legs}
    assert p.same_day
    assert by["C"].end <= by["B"].start and by["B"].end <= by["X"].start
    # nothing shorter exists among allowed orders: three back-to-back 30-minute segments
    assert p.span == timedelta(minutes=90)


def test_rules_that_contradict_each_other_on_one_day_spread_the_exams():
    """Barium is fasting (first) but must follow an abdominal CT that is not: no day can do both."""
    reqs = [ExamRequest("B", exam("RF-BARIUM")), ExamRequest("C", exam("CT-ABD"))]
    p = plan(snap(day_segments(list(ALL_ROOMS), days=3)), reqs, OUT)
    assert not p.same_day
    assert violations([leg.placed() for leg in p.legs], R) == []


def test_exams_that_cannot_share_a_day_fall_back_to_earliest_each():
    reqs = [ExamRequest("C1", exam("CT-ABD-C")), ExamRequest("C2", exam("CT-HEAD-C"))]  # 24 h iodinated gap
    p = plan(snap(day_segments(list(ALL_ROOMS), days=3)), reqs, OUT)
    assert not p.same_day
    a, b = sorted(p.legs, key=lambda leg: leg.segment.start)
    assert b.segment.start - a.segment.end >= timedelta(hours=24)


# ---- properties ----------------------------------------------------------------------------

CODES = ["CT-CHEST", "CT-ABD", "CT-ABD-C", "CT-HEAD-C", "MR-HEAD", "MR-ABD-C", "US-ABD", "US-PELVIS", "RF-BARIUM"]


def violations(items: list[Placed], rules: BookingRules) -> list[str]:
    """An oracle written from the rules' wording, independent of `pair_refusals`."""
    out = []
    zone_day = lambda dt: (dt + timedelta(hours=8)).date()  # Asia/Shanghai has no DST
    for a, b in itertools.permutations(items, 2):
        if a.start <= b.start and a is not b:
            gap = b.start - a.end
            if (a.start, a.label) < (b.start, b.label) and gap < timedelta(minutes=b.exam.prep_minutes):
                out.append(f"overlap {a.label} {b.label}")
            for r in rules.conflicts:
                ta, tb = a.exam.all_tags, b.exam.all_tags
                if r.kind == "order" and zone_day(a.start) == zone_day(b.start) and r.then <= ta and r.first <= tb \
                        and (a.start, a.label) < (b.start, b.label):
                    out.append(f"{r.id}: {a.label} before {b.label}")
                if r.kind == "gap" and ((r.first <= ta and r.then <= tb) or (r.first <= tb and r.then <= ta)) \
                        and gap < timedelta(minutes=r.gap_minutes):
                    out.append(f"{r.id}: {a.label} {b.label}")
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patients=st.lists(st.lists(st.sampled_from(CODES), min_size=1, max_size=3, unique=True),
                         min_size=1, max_size=25),
       cap=st.integers(1, 3))
def test_property_capacity_is_never_exceeded_and_no_conflict_rule_is_broken(patients, cap):
    """Book patients one after another into a small calendar, applying capacity as the service does."""
    segs = {s.id: s for s in day_segments(list(ALL_ROOMS), days=3, cap=cap)}
    booked: list[list[Placed]] = []
    for i, codes in enumerate(patients):
        s = Snapshot(sorted(segs.values(), key=lambda x: (x.start, x.room_id)), ALL_ROOMS, (), R, NOW)
        p = plan(s, [ExamRequest(f"p{i}-{c}", exam(c)) for c in codes], OUT)
        if p is None:
            continue
        for leg in p.legs:
            old = segs[leg.segment.id]
            segs[old.id] = SegmentView(old.id, old.room_id, old.start, old.end, old.device_capacity, old.staff_capacity,
                                       old.device_used + leg.exam.device_units, old.staff_used + leg.exam.staff_units)
        booked.append([leg.placed() for leg in p.legs])
    for s in segs.values():
        assert s.device_used <= s.device_capacity and s.staff_used <= s.staff_capacity
    for items in booked:
        assert violations(items, R) == []


@settings(max_examples=40, deadline=None)
@given(codes=st.lists(st.sampled_from(CODES), min_size=2, max_size=4, unique=True))
def test_property_plans_never_break_a_rule_and_same_day_plans_stay_on_one_day(codes):
    s = snap(day_segments(list(ALL_ROOMS), days=4))
    reqs = [ExamRequest(c, exam(c)) for c in codes]
    p = plan(s, reqs, OUT)
    assert p is not None
    assert violations([leg.placed() for leg in p.legs], R) == []
    if p.same_day:
        day = p.legs[0].segment.start.date()
        for leg in p.legs:
            assert leg.segment.start.date() == day


def test_a_room_limited_to_some_exam_codes_is_not_offered_for_others():
    limited = {**ALL_ROOMS, "CT1": RoomView("CT1", "A", frozenset({"CT"}), frozenset({"CT-HEAD-C"}))}
    s = Snapshot(day_segments(list(limited)), limited, (), R, NOW)
    leg = earliest(s, ExamRequest("A", exam("CT-CHEST")), OUT)
    assert leg.segment.room_id == "CT9"


def test_one_stop_across_campuses_leaves_travel_time():
    """US only on campus A, CT only on campus B: the second exam waits for the shuttle (R5.3.1)."""
    two = rooms(("US1", "A", "US"), ("CT9", "B", "CT"))
    s = Snapshot(day_segments(list(two)), two, (), R, NOW)
    p = plan(s, [ExamRequest("U", exam("US-ABD")), ExamRequest("C", exam("CT-CHEST"))], OUT)
    by = {leg.label: leg.segment for leg in p.legs}
    assert by["C"].start - by["U"].end >= timedelta(minutes=R.campus_travel_minutes)
    assert by["C"].start - by["U"].end < timedelta(minutes=R.campus_travel_minutes + 30)  # the next segment after


def test_the_daily_exam_limit_moves_an_exam_to_another_day():
    rules = R.model_copy(update={"max_exams_per_patient_day": 1})
    busy = PatientContext(patient_type=PatientType.outpatient, existing=(placed("US-PELVIS", NOW + timedelta(hours=2)),))
    leg = earliest(snap(rules=rules), ExamRequest("X", exam("CT-CHEST")), busy)
    assert leg.segment.start.date() > NOW.date()
