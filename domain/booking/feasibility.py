"""Why a booking is refused: for the whole request, and for each candidate segment.

Every check returns `Refusal`s (a code a program can act on, a message a person
can read) instead of a bare "no", because R5.3 asks the desk to say why a time
is not offered. An empty list means feasible.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from domain.booking.calendar import Closure, RoomView, SegmentView
from domain.booking.rules import BookingRules, Channel, ExamTypeRule, MrScreening, PatientType


class Refusal(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Placed:
    """An exam of the patient at a time: already booked, or placed by the planner."""

    label: str
    exam: ExamTypeRule
    start: datetime
    end: datetime
    campus: str


@dataclass(frozen=True)
class PatientContext:
    """What the rules need to know about the patient at booking time."""

    patient_type: PatientType
    existing: tuple[Placed, ...] = ()
    egfr: float | None = None
    egfr_at: datetime | None = None
    mr_screening: MrScreening = "not_done"
    blocked_channels: frozenset[Channel] = frozenset()
    blocked_until: datetime | None = None
    tags: frozenset[str] = field(default_factory=frozenset)


def local_day(dt: datetime, zone: ZoneInfo) -> date:
    return dt.astimezone(zone).date()


def _hm(t) -> str:
    return t.strftime("%H:%M")


def request_refusals(
    exams: Sequence[ExamTypeRule], patient: PatientContext, channel: Channel, rules: BookingRules, now: datetime,
) -> list[Refusal]:
    """Checks that no segment can cure: channel hours and rights, sanctions, eGFR, MR safety."""
    out: list[Refusal] = []
    zone = ZoneInfo(rules.timezone)
    ch = rules.channel_rule(channel)
    local_now = now.astimezone(zone).time()
    if not ch.open_from <= local_now <= ch.open_to:
        out.append(Refusal(code="channel_closed", message=(
            f"{channel.value} booking is open {_hm(ch.open_from)}-{_hm(ch.open_to)} only")))
    pt = rules.patient_rule(patient.patient_type)
    if channel not in pt.channels:
        out.append(Refusal(code="channel_not_allowed", message=(
            f"{patient.patient_type.value} patients are not booked through {channel.value}")))
    if channel in patient.blocked_channels and patient.blocked_until and now < patient.blocked_until:
        out.append(Refusal(code="no_show_sanction", message=(
            f"{channel.value} booking is blocked until {patient.blocked_until.date().isoformat()} "
            f"after {rules.no_show.threshold} missed appointments; the centre can still book")))
    for exam in exams:
        if exam.patient_types is not None and patient.patient_type not in exam.patient_types:
            out.append(Refusal(code="patient_type", message=(
                f"{exam.code} is not offered to {patient.patient_type.value} patients")))
        if exam.requires_egfr:
            fresh = patient.egfr_at is not None and now - patient.egfr_at <= timedelta(days=rules.egfr_max_age_days)
            if patient.egfr is None or not fresh:
                out.append(Refusal(code="egfr_missing", message=(
                    f"{exam.code} uses {exam.contrast} contrast: needs an eGFR from the last "
                    f"{rules.egfr_max_age_days} days")))
            elif patient.egfr < rules.egfr_min:
                out.append(Refusal(code="egfr_low", message=(
                    f"{exam.code} uses {exam.contrast} contrast: eGFR {patient.egfr:g} is below {rules.egfr_min:g}")))
        if exam.requires_mr_screening and patient.mr_screening == "contraindicated":
            out.append(Refusal(code="mr_unsafe", message=f"{exam.code}: MR safety screening found a contraindication"))
    return out


def _pair_issues(a: Placed, b: Placed, rules: BookingRules) -> Iterator[tuple[str, str]]:
    """(code, message) for each rule the pair breaks, lazily: the search stops at the first."""
    first, second = (a, b) if (a.start, a.label) <= (b.start, b.label) else (b, a)
    travel = rules.campus_travel_minutes if first.campus != second.campus else 0
    if second.start < first.end + timedelta(minutes=second.exam.prep_minutes + travel):
        extra = f" (+{travel} min between campuses)" if travel else ""
        yield "overlap", (f"{second.exam.code} needs {second.exam.prep_minutes} min preparation after "
                          f"{first.exam.code} ({first.label}) ends{extra}")
    zone = ZoneInfo(rules.timezone)
    same_day = local_day(first.start, zone) == local_day(second.start, zone)
    ta, tb = first.exam.all_tags, second.exam.all_tags
    for rule in rules.conflicts:
        if rule.kind == "order":
            if not same_day:
                continue
            # The later exam must not be a `first` exam whose `then` partner came earlier.
            if rule.matches_first(tb) and rule.matches_then(ta):
                yield f"conflict:{rule.id}", rule.message
            elif rule.matches_first(ta) and rule.matches_then(tb) and \
                    second.start < first.end + timedelta(minutes=rule.gap_minutes):
                yield f"conflict:{rule.id}", rule.message
        else:
            pair = (rule.matches_first(ta) and rule.matches_then(tb)) or (rule.matches_first(tb) and rule.matches_then(ta))
            if pair and second.start < first.end + timedelta(minutes=rule.gap_minutes):
                yield f"conflict:{rule.id}", rule.message


def pair_refusals(a: Placed, b: Placed, rules: BookingRules) -> list[Refusal]:
    """Whether two of one patient's exams can both stand: no overlap, travel, conflict rules."""
    return [Refusal(code=code, message=message) for code, message in _pair_issues(a, b, rules)]


def pair_ok(a: Placed, b: Placed, rules: BookingRules) -> bool:
    return next(_pair_issues(a, b, rules), None) is None


def capacity_refusals(exam: ExamTypeRule, seg: SegmentView, uses_reserve: bool) -> list[Refusal]:
    """Device and staff sides separately, so the desk sees which one is short."""
    out: list[Refusal] = []
    held = 0 if uses_reserve else seg.reserve_units
    for side, used, cap, units in (("device", seg.device_used, seg.device_capacity, exam.device_units),
                                   ("staff", seg.staff_used, seg.staff_capacity, exam.staff_units)):
        if used + units > cap:
            out.append(Refusal(code=f"{side}_full", message=f"{side} capacity {cap} used {used}, exam needs {units}"))
        elif used + units > cap - held:
            out.append(Refusal(code="reserved", message=f"the last {held} {side} units are held for emergencies"))
    return out


def slot_refusals(
    exam: ExamTypeRule, seg: SegmentView, room: RoomView, patient: PatientContext, rules: BookingRules,
    now: datetime, closures: Iterable[Closure] = (), others: Sequence[Placed] = (), first_only: bool = False,
) -> list[Refusal]:
    """Everything wrong with booking `exam` into `seg` for this patient (empty: feasible).

    `first_only` stops at the first reason: the search only needs yes or no, the quote all reasons.
    """
    out: list[Refusal] = []
    pt = rules.patient_rule(patient.patient_type)
    if not room.can_do(exam.code, exam.modality):
        out.append(Refusal(code="room_cannot", message=f"{room.id} does not do {exam.code}"))
    lead = max(exam.lead_minutes, pt.lead_minutes)
    if seg.start < now + timedelta(minutes=lead):
        out.append(Refusal(code="too_soon", message=f"needs {lead} min notice" if lead else "already started"))
    if seg.start > now + timedelta(days=pt.window_days):
        out.append(Refusal(code="outside_window", message=(
            f"{patient.patient_type.value} patients book at most {pt.window_days} days ahead")))
    if out and first_only:
        return out
    out += capacity_refusals(exam, seg, pt.uses_reserve)
    if out and first_only:
        return out
    zone = ZoneInfo(rules.timezone)
    if exam.latest_local_start and seg.start.astimezone(zone).time() > exam.latest_local_start:
        out.append(Refusal(code="too_late_in_day", message=(
            f"{exam.code} starts by {_hm(exam.latest_local_start)} (fasting/preparation)")))
    for c in closures:
        if c.room_id == room.id and c.overlaps(seg.start, seg.end):
            out.append(Refusal(code="closed", message=f"{room.id} closed: {c.reason}"))
    if out and first_only:
        return out
    placed = [*patient.existing, *others]
    if not placed:
        return out
    here = Placed(label="(this exam)", exam=exam, start=seg.start, end=seg.end, campus=room.campus)
    day = local_day(seg.start, zone)
    if sum(1 for p in placed if local_day(p.start, zone) == day) >= rules.max_exams_per_patient_day:
        out.append(Refusal(code="day_limit", message=f"at most {rules.max_exams_per_patient_day} exams a day"))
    for p in placed:
        if first_only:
            issue = next(_pair_issues(here, p, rules), None)
            if issue is not None:
                return [*out, Refusal(code=issue[0], message=issue[1])]
        else:
            out += pair_refusals(here, p, rules)
    return out
