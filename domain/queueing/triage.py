"""Smart triage (R6.1.6): which room a checked-in patient queues for, as a pure function of data.

Hard rules refuse a room, each with a reason the desk can read: the room is closed, does not
do the modality, is for one sex or an age band only (mammography, paediatrics), cannot take the
patient's bed or wheelchair, or isolation sends the patient to a designated isolation room (and
keeps others out of it). The rooms left are ranked by distance from where the patient is (ward or
outpatient area: a measured distance matrix, else an estimate from building and floor), then by
how many wait, then the booked room, then room id, so equal rooms always give the same answer.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.queueing.merging import MergeRule

Transport = Literal["walking", "wheelchair", "bed"]
Isolation = Literal["none", "mdro", "infectious"]
DistanceBasis = Literal["matrix", "estimate", "unknown"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RoomProfile(_Frozen):
    """What triage knows about a room (its modalities come from the room row)."""

    room_id: str
    modalities: frozenset[str]
    building: str = ""
    floor: int = 0
    active: bool = True
    accepts_bed: bool = True
    accepts_wheelchair: bool = True
    sexes: frozenset[str] = Field(frozenset(), description="Empty: everyone; {'F'}: women only")
    min_age: int | None = Field(None, ge=0)
    max_age: int | None = Field(None, ge=0)
    isolation_room: bool = Field(False, description="Designated room for MDRO / infectious patients")


class Area(_Frozen):
    """A ward or outpatient area patients come from."""

    id: str
    building: str
    floor: int = 0


class PatientFacts(_Frozen):
    """The patient as the desk sees them at check-in."""

    modality: str
    sex: str = "U"
    age: int = Field(ge=0)
    area: str | None = Field(None, description="Ward (inpatient) or current area (outpatient)")
    transport: Transport = "walking"
    isolation: Isolation = "none"
    critical: bool = False
    booked_room: str | None = None


class TriageRules(_Frozen):
    """The center's triage settings; a new version is a new row, old decisions keep theirs."""

    version: int = 1
    isolation_to_designated_room: bool = Field(
        True, description="Isolation patients go to a designated room of the modality when one can take them")
    reserve_isolation_rooms: bool = Field(
        False, description="Designated isolation rooms take isolation patients only")
    separate_isolation: bool = Field(True, description="Never queue two isolation patients next to each other")
    same_building_metres: float = Field(20, ge=0)
    metres_per_floor: float = Field(30, ge=0)
    other_building_metres: float = Field(200, ge=0)
    merge_rules: tuple[MergeRule, ...] = ()


class Refusal(_Frozen):
    room_id: str
    code: Literal["inactive", "modality", "sex", "age", "transport", "isolation_room", "reserved_isolation"]
    reason: str


class RoomScore(_Frozen):
    room_id: str
    distance_m: float | None
    distance_basis: DistanceBasis
    waiting: int
    booked: bool


class TriageChoice(_Frozen):
    room_id: str
    why: str
    ranking: tuple[RoomScore, ...] = Field(description="Every suitable room, best first")
    refusals: tuple[Refusal, ...]
    rules_version: int


class NoSuitableRoom(Exception):
    def __init__(self, refusals: Sequence[Refusal]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("no room can take this patient: " + "; ".join(f"{r.room_id}: {r.reason}" for r in refusals))


def _refusal(room: RoomProfile, p: PatientFacts) -> Refusal | None:
    r = room.room_id
    if not room.active:
        return Refusal(room_id=r, code="inactive", reason="room closed")
    if p.modality not in room.modalities:
        return Refusal(room_id=r, code="modality", reason=f"does not do {p.modality}")
    if room.sexes and p.sex not in room.sexes:
        return Refusal(room_id=r, code="sex", reason=f"for {'/'.join(sorted(room.sexes))} patients only")
    if room.min_age is not None and p.age < room.min_age:
        return Refusal(room_id=r, code="age", reason=f"for patients aged {room.min_age} and over")
    if room.max_age is not None and p.age > room.max_age:
        return Refusal(room_id=r, code="age", reason=f"for patients aged {room.max_age} and under")
    if p.transport == "bed" and not room.accepts_bed:
        return Refusal(room_id=r, code="transport", reason="cannot take a bed")
    if p.transport == "wheelchair" and not room.accepts_wheelchair:
        return Refusal(room_id=r, code="transport", reason="cannot take a wheelchair")
    return None


def distance(room: RoomProfile, area_id: str | None, areas: Mapping[str, Area],
             matrix: Mapping[tuple[str, str], float], rules: TriageRules) -> tuple[float | None, DistanceBasis]:
    """Metres from the patient's area: the measured matrix first, else building and floor."""
    if area_id is None:
        return None, "unknown"
    if (area_id, room.room_id) in matrix:
        return matrix[(area_id, room.room_id)], "matrix"
    area = areas.get(area_id)
    if area is None or not room.building:
        return None, "unknown"
    base = rules.same_building_metres if area.building == room.building else rules.other_building_metres
    return base + rules.metres_per_floor * abs(area.floor - room.floor), "estimate"


def _rank_key(s: RoomScore) -> tuple:
    return (s.distance_m is None, s.distance_m or 0.0, s.waiting, not s.booked, s.room_id)


def choose_room(rooms: Sequence[RoomProfile], patient: PatientFacts, *, waiting: Mapping[str, int],
                areas: Mapping[str, Area] | None = None, matrix: Mapping[tuple[str, str], float] | None = None,
                rules: TriageRules = TriageRules()) -> TriageChoice:
    """The best room for the patient with every other room's score or refusal; `waiting` is how
    many wait for each room now. Raises NoSuitableRoom with every refusal when none fits."""
    areas, matrix = areas or {}, matrix or {}
    refusals: list[Refusal] = []
    fit: list[RoomProfile] = []
    for room in sorted(rooms, key=lambda r: r.room_id):
        why = _refusal(room, patient)
        if why is None:
            fit.append(room)
        else:
            refusals.append(why)
    isolated = patient.isolation != "none"
    designated = [r for r in fit if r.isolation_room]
    if isolated and rules.isolation_to_designated_room and designated:
        names = ", ".join(r.room_id for r in designated)
        refusals += [Refusal(room_id=r.room_id, code="isolation_room",
                             reason=f"{patient.isolation} patients go to the designated isolation room {names}")
                     for r in fit if not r.isolation_room]
        fit = designated
    elif not isolated and rules.reserve_isolation_rooms:
        refusals += [Refusal(room_id=r.room_id, code="reserved_isolation", reason="reserved for isolation patients")
                     for r in fit if r.isolation_room]
        fit = [r for r in fit if not r.isolation_room]
    if not fit:
        raise NoSuitableRoom(refusals)
    scores = sorted((_score(r, patient, waiting, areas, matrix, rules) for r in fit), key=_rank_key)
    best = scores[0]
    to_designated = isolated and rules.isolation_to_designated_room and bool(designated)
    return TriageChoice(room_id=best.room_id, why=_why(best, scores[1:], patient, to_designated),
                        ranking=tuple(scores), refusals=tuple(refusals), rules_version=rules.version)


def _score(room: RoomProfile, p: PatientFacts, waiting: Mapping[str, int], areas: Mapping[str, Area],
           matrix: Mapping[tuple[str, str], float], rules: TriageRules) -> RoomScore:
    metres, basis = distance(room, p.area, areas, matrix, rules)
    return RoomScore(room_id=room.room_id, distance_m=metres, distance_basis=basis,
                     waiting=waiting.get(room.room_id, 0), booked=room.room_id == p.booked_room)


def _why(best: RoomScore, others: Sequence[RoomScore], p: PatientFacts, to_designated: bool) -> str:
    parts = []
    if to_designated:
        parts.append(f"designated isolation room for {p.isolation} patients")
    if best.distance_m is not None:
        parts.append(f"{best.distance_m:.0f} m from {p.area} ({best.distance_basis})")
    parts.append(f"{best.waiting} waiting")
    if others:
        nxt = others[0]
        if (best.distance_m, nxt.distance_m) != (None, None) and best.distance_m != nxt.distance_m:
            parts.append(f"nearer than {nxt.room_id}")
        elif best.waiting != nxt.waiting:
            parts.append(f"shorter queue than {nxt.room_id}")
        elif best.booked:
            parts.append("the booked room")
        else:
            parts.append(f"tie with {nxt.room_id}, by room id")
    else:
        parts.append("the only suitable room")
    if p.critical:
        parts.append("critical patient: called first")
    return f"{best.room_id}: " + "; ".join(parts)
