"""Smart triage's data (R6.1.6): room profiles, areas and distances, versioned rules, the
patient's facts at check-in, and the decisions with their reasons. The choice itself is
`domain.queueing.triage.choose_room`; this module only reads and writes what it needs.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func
from sqlmodel import Session, col, select

from core.db import get_engine
from domain.booking.check_in import age_on
from domain.booking_tables import SlotBooking
from domain.queue_tables import (AreaRoomDistance, CheckInFacts, QueueDefinition, QueueTicket, RoomTriageProfile,
                                 TriageArea, TriageDecision, TriageRuleSet)
from domain.queueing.merging import DEFAULT_MERGE_RULES, MergeRule
from domain.queueing.triage import (Area, Isolation, NoSuitableRoom, PatientFacts, Refusal, RoomProfile, RoomScore,
                                    Transport, TriageChoice, TriageRules, choose_room)
from domain.tables import Appointment, ExamOrder, Patient, Room, utcnow
from services.errors import NotFound

DEFAULT_TRIAGE_RULES = TriageRules(merge_rules=DEFAULT_MERGE_RULES)


class ProfileIn(BaseModel):
    building: str = Field("", max_length=64)
    floor: int = Field(0, ge=-10, le=100)
    active: bool = True
    accepts_bed: bool = True
    accepts_wheelchair: bool = True
    sexes: list[Literal["M", "F", "O", "U"]] = Field(default_factory=list, description="Empty: everyone")
    min_age: int | None = Field(None, ge=0, le=150)
    max_age: int | None = Field(None, ge=0, le=150)
    isolation_room: bool = False

    @model_validator(mode="after")
    def _ages(self) -> "ProfileIn":
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        return self


class AreaIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    building: str = Field(min_length=1, max_length=64)
    floor: int = Field(0, ge=-10, le=100)


class RulesIn(BaseModel):
    """A new version of the triage rules (the version number is given by the server)."""

    isolation_to_designated_room: bool = True
    reserve_isolation_rooms: bool = False
    separate_isolation: bool = True
    same_building_metres: float = Field(20, ge=0)
    metres_per_floor: float = Field(30, ge=0)
    other_building_metres: float = Field(200, ge=0)
    merge_rules: list[MergeRule] = Field(default_factory=lambda: list(DEFAULT_MERGE_RULES))


class FactsIn(BaseModel):
    """What the desk sees at check-in; isolation and critical default to the order's flags."""

    area_id: str | None = Field(None, max_length=64, description="Ward (inpatient) or current area (outpatient)")
    transport: Transport = "walking"
    isolation: Isolation | None = Field(None, description="None: from the order's MDRO / infectious flags")
    critical: bool | None = Field(None, description="None: from the order's critical flag")


class TriageOut(BaseModel):
    accession_number: str
    room_id: str
    why: str
    ranking: list[RoomScore]
    refusals: list[Refusal]
    rules_version: int
    facts: PatientFacts
    suitable: bool = Field(True, description="False: no room passes every rule; the booked room is kept")


class DecisionOut(BaseModel):
    accession_number: str
    ticket_id: str
    kind: str
    room_id: str
    why: str
    rules_version: int
    detail: dict
    actor: str
    at: datetime


def set_profile(session: Session, room_id: str, body: ProfileIn, actor: str) -> None:
    if session.get(Room, room_id) is None:
        raise NotFound(f"no room {room_id}")
    row = session.get(RoomTriageProfile, room_id) or RoomTriageProfile(room_id=room_id)
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor, utcnow()
    session.add(row)
    session.commit()


def set_area(session: Session, area_id: str, body: AreaIn) -> None:
    row = session.get(TriageArea, area_id) or TriageArea(id=area_id, name=body.name, building=body.building)
    row.name, row.building, row.floor = body.name, body.building, body.floor
    session.add(row)
    session.commit()


def set_distance(session: Session, area_id: str, room_id: str, metres: float) -> None:
    if session.get(Room, room_id) is None:
        raise NotFound(f"no room {room_id}")
    row = session.get(AreaRoomDistance, (area_id, room_id)) or AreaRoomDistance(area_id=area_id, room_id=room_id,
                                                                                  metres=metres)
    row.metres = metres
    session.add(row)
    session.commit()


def current_rules(session: Session) -> TriageRules:
    """The newest published version, else the built-in version 1."""
    newest = session.exec(select(func.max(TriageRuleSet.version))).one()
    if newest is None:
        return DEFAULT_TRIAGE_RULES
    return TriageRules.model_validate({**session.get(TriageRuleSet, newest).rules, "version": newest})


def publish_rules(session: Session, body: RulesIn, actor: str) -> TriageRules:
    version = max(current_rules(session).version + 1, 2)
    rules = TriageRules.model_validate({**body.model_dump(), "version": version})
    session.add(TriageRuleSet(version=version, rules=rules.model_dump(mode="json", exclude={"version"}),
                              created_by=actor))
    session.commit()
    return rules


def record_facts(accession_number: str, body: FactsIn, actor: str) -> None:
    with Session(get_engine()) as s:
        order = s.get(ExamOrder, accession_number)
        if order is None:
            raise NotFound(f"no order {accession_number}")
        if body.area_id is not None and s.get(TriageArea, body.area_id) is None and not s.exec(
                select(AreaRoomDistance).where(AreaRoomDistance.area_id == body.area_id)).first():
            raise NotFound(f"no area {body.area_id}: define it under /api/v1/triage/areas first")
        row = s.get(CheckInFacts, accession_number) or CheckInFacts(accession_number=accession_number,
                                                                     recorded_by=actor)
        isolation = body.isolation or ("mdro" if order.special_mdro else
                                       "infectious" if order.special_infectious else "none")
        critical = order.special_critical if body.critical is None else body.critical
        row.area_id, row.transport, row.isolation, row.critical = body.area_id, body.transport, isolation, critical
        row.recorded_by, row.recorded_at = actor, utcnow()
        s.add(row)
        s.commit()


def booked_room(session: Session, accession_number: str) -> str | None:
    live = session.exec(select(SlotBooking.room_id).where(SlotBooking.active_accession == accession_number)).first()
    return live or session.exec(select(Appointment.room_id).where(
        Appointment.accession_number == accession_number)).first()


def patient_facts(session: Session, order: ExamOrder, at: datetime, booked: str | None) -> PatientFacts:
    """The desk's facts for the order, else the order's own flags (what HIS sent)."""
    patient = session.get(Patient, order.patient_id)
    row = session.get(CheckInFacts, order.accession_number)
    isolation = row.isolation if row else ("mdro" if order.special_mdro else
                                           "infectious" if order.special_infectious else "none")
    return PatientFacts(
        modality=order.modality, sex=patient.sex or "U", age=max(age_on(patient.birth_date, at.date()), 0),
        area=row.area_id if row else None, transport=row.transport if row else "walking", isolation=isolation,
        critical=row.critical if row else order.special_critical, booked_room=booked)


def room_profiles(session: Session) -> list[RoomProfile]:
    profiles = {p.room_id: p for p in session.exec(select(RoomTriageProfile))}
    out = []
    for room in session.exec(select(Room)):
        p = profiles.get(room.id)
        extra = {} if p is None else dict(
            building=p.building, floor=p.floor, active=p.active, accepts_bed=p.accepts_bed,
            accepts_wheelchair=p.accepts_wheelchair, sexes=frozenset(p.sexes), min_age=p.min_age,
            max_age=p.max_age, isolation_room=p.isolation_room)
        out.append(RoomProfile(room_id=room.id, modalities=frozenset(room.modalities.split()), **extra))
    return out


def waiting_by_room(session: Session) -> dict[str, int]:
    """Patients waiting in each room's exam queue(s); a queue several rooms share counts for each."""
    queues = list(session.exec(select(QueueDefinition).where(
        QueueDefinition.active == True, QueueDefinition.stage == "exam")))  # noqa: E712
    counts = dict(session.exec(select(QueueTicket.queue_id, func.count()).where(
        QueueTicket.state == "waiting", col(QueueTicket.queue_id).in_([q.id for q in queues]))
        .group_by(QueueTicket.queue_id)).all())
    out: dict[str, int] = {}
    for q in queues:
        for room in q.rooms:
            out[room] = out.get(room, 0) + counts.get(q.id, 0)
    return out


def choose(session: Session, order: ExamOrder, at: datetime, booked: str | None) -> TriageOut:
    """Triage for one order now; with no suitable room the booked room stands (the desk may override)."""
    rules = current_rules(session)
    facts = patient_facts(session, order, at, booked)
    areas = {a.id: Area(id=a.id, building=a.building, floor=a.floor) for a in session.exec(select(TriageArea))}
    matrix = {(d.area_id, d.room_id): d.metres for d in session.exec(select(AreaRoomDistance))}
    try:
        choice: TriageChoice = choose_room(room_profiles(session), facts, waiting=waiting_by_room(session),
                                           areas=areas, matrix=matrix, rules=rules)
    except NoSuitableRoom as err:
        if booked is None:
            raise NotFound(str(err)) from err
        return TriageOut(accession_number=order.accession_number, room_id=booked, suitable=False,
                         why=f"{booked}: no room passes every rule; the booked room is kept", ranking=[],
                         refusals=list(err.refusals), rules_version=rules.version, facts=facts)
    return TriageOut(accession_number=order.accession_number, room_id=choice.room_id, why=choice.why,
                     ranking=list(choice.ranking), refusals=list(choice.refusals), rules_version=choice.rules_version,
                     facts=facts)


def preview(accession_number: str, at: datetime) -> TriageOut:
    """Where the patient would queue if checked in now (the check-in form shows it)."""
    with Session(get_engine()) as s:
        order = s.get(ExamOrder, accession_number)
        if order is None:
            raise NotFound(f"no order {accession_number}")
        return choose(s, order, at, booked_room(s, accession_number))


def record_decision(session: Session, out: TriageOut | None, *, accession_number: str, ticket_id: str, kind: str,
                    room_id: str, why: str, actor: str, rules_version: int, extra: dict | None = None) -> None:
    detail = {} if out is None else {
        "ranking": [r.model_dump() for r in out.ranking], "refusals": [r.model_dump() for r in out.refusals],
        "facts": out.facts.model_dump(), "suitable": out.suitable}
    session.add(TriageDecision(accession_number=accession_number, ticket_id=ticket_id, kind=kind, room_id=room_id,
                               why=why, rules_version=rules_version, detail={**detail, **(extra or {})}, actor=actor))


def decisions(accession_number: str) -> list[DecisionOut]:
    with Session(get_engine()) as s:
        rows = s.exec(select(TriageDecision).where(TriageDecision.accession_number == accession_number)
                      .order_by(TriageDecision.id)).all()
        return [DecisionOut(**r.model_dump(exclude={"id"})) for r in rows]
