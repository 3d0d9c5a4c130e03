"""Smart triage's room choice (R6.1.6): each hard rule refuses with a reason, the rest rank by
distance, then queue length, then the booked room, then room id."""
from __future__ import annotations

import pytest

from domain.queueing.triage import Area, NoSuitableRoom, PatientFacts, RoomProfile, TriageRules, choose_room, distance

CT1 = RoomProfile(room_id="CT1", modalities=frozenset({"CT"}), building="A", floor=1)
CT2 = RoomProfile(room_id="CT2", modalities=frozenset({"CT"}), building="A", floor=2)
MR1 = RoomProfile(room_id="MR1", modalities=frozenset({"MR"}), building="A", floor=1)
ADULT_CT = PatientFacts(modality="CT", sex="M", age=50)


def refusal_codes(choice) -> dict[str, str]:
    return {r.room_id: r.code for r in choice.refusals}


def test_modality_refuses_rooms_that_do_not_do_the_exam():
    choice = choose_room([CT1, MR1], ADULT_CT, waiting={})
    assert choice.room_id == "CT1"
    assert refusal_codes(choice) == {"MR1": "modality"}
    assert "does not do CT" in choice.refusals[0].reason


def test_sex_rule_keeps_men_out_of_a_women_only_room():
    mammo = RoomProfile(room_id="MG1", modalities=frozenset({"MG"}), sexes=frozenset({"F"}))
    with pytest.raises(NoSuitableRoom, match="for F patients only"):
        choose_room([mammo], PatientFacts(modality="MG", sex="M", age=50), waiting={})
    assert choose_room([mammo], PatientFacts(modality="MG", sex="F", age=50), waiting={}).room_id == "MG1"


def test_age_rule_sends_children_to_the_paediatric_room_and_adults_elsewhere():
    paeds = RoomProfile(room_id="CT-P", modalities=frozenset({"CT"}), max_age=14)
    adults = RoomProfile(room_id="CT-A", modalities=frozenset({"CT"}), min_age=15)
    child = choose_room([paeds, adults], PatientFacts(modality="CT", age=6), waiting={})
    assert child.room_id == "CT-P" and refusal_codes(child) == {"CT-A": "age"}
    adult = choose_room([paeds, adults], ADULT_CT, waiting={})
    assert adult.room_id == "CT-A" and "14 and under" in adult.refusals[0].reason


def test_transport_rule_refuses_rooms_that_cannot_take_a_bed_or_wheelchair():
    narrow = CT1.model_copy(update={"accepts_bed": False, "accepts_wheelchair": False})
    on_bed = ADULT_CT.model_copy(update={"transport": "bed"})
    choice = choose_room([narrow, CT2], on_bed, waiting={})
    assert choice.room_id == "CT2" and refusal_codes(choice) == {"CT1": "transport"}
    wheel = choose_room([narrow, CT2], ADULT_CT.model_copy(update={"transport": "wheelchair"}), waiting={})
    assert wheel.room_id == "CT2"
    assert choose_room([narrow, CT2], ADULT_CT, waiting={"CT2": 5}).room_id == "CT1"  # walking: any room


def test_closed_room_is_refused():
    choice = choose_room([CT1.model_copy(update={"active": False}), CT2], ADULT_CT, waiting={})
    assert choice.room_id == "CT2" and refusal_codes(choice) == {"CT1": "inactive"}


def test_isolation_patient_goes_to_the_designated_room_even_when_another_is_nearer():
    iso_room = CT2.model_copy(update={"isolation_room": True})
    mdro = ADULT_CT.model_copy(update={"isolation": "mdro", "area": "ward-1"})
    areas = {"ward-1": Area(id="ward-1", building="A", floor=1)}
    choice = choose_room([CT1, iso_room], mdro, waiting={}, areas=areas)
    assert choice.room_id == "CT2" and refusal_codes(choice) == {"CT1": "isolation_room"}
    assert "designated isolation room" in choice.why
    off = choose_room([CT1, iso_room], mdro, waiting={}, areas=areas,
                      rules=TriageRules(isolation_to_designated_room=False))
    assert off.room_id == "CT1"  # nearest, with the queue's gap rule instead


def test_reserved_isolation_room_takes_no_ordinary_patient():
    iso_room = CT1.model_copy(update={"isolation_room": True})
    assert choose_room([iso_room, CT2], ADULT_CT, waiting={}).room_id == "CT1"  # not reserved by default
    reserved = choose_room([iso_room, CT2], ADULT_CT, waiting={}, rules=TriageRules(reserve_isolation_rooms=True))
    assert reserved.room_id == "CT2" and refusal_codes(reserved) == {"CT1": "reserved_isolation"}


def test_nearest_room_wins_by_the_distance_matrix_over_the_estimate():
    facts = ADULT_CT.model_copy(update={"area": "ward-5"})
    areas = {"ward-5": Area(id="ward-5", building="A", floor=2)}
    estimated = choose_room([CT1, CT2], facts, waiting={}, areas=areas)
    assert estimated.room_id == "CT2"  # same floor: 20 m against 50 m
    assert [(s.room_id, s.distance_m, s.distance_basis) for s in estimated.ranking] == [
        ("CT2", 20, "estimate"), ("CT1", 50, "estimate")]
    measured = choose_room([CT1, CT2], facts, waiting={}, areas=areas, matrix={("ward-5", "CT1"): 10})
    assert measured.room_id == "CT1" and "10 m from ward-5 (matrix)" in measured.why
    assert "nearer than CT2" in measured.why


def test_other_building_costs_more_and_unknown_distance_ranks_last():
    far = RoomProfile(room_id="CT9", modalities=frozenset({"CT"}), building="B", floor=1)
    unknown = RoomProfile(room_id="CT0", modalities=frozenset({"CT"}))
    facts = ADULT_CT.model_copy(update={"area": "opd"})
    areas = {"opd": Area(id="opd", building="A", floor=1)}
    ranking = choose_room([far, unknown, CT1], facts, waiting={}, areas=areas).ranking
    assert [(s.room_id, s.distance_m) for s in ranking] == [("CT1", 20), ("CT9", 200), ("CT0", None)]
    assert distance(far, None, areas, {}, TriageRules()) == (None, "unknown")


def test_tie_on_distance_goes_to_the_shorter_queue_then_booked_room_then_room_id():
    twin = CT1.model_copy(update={"room_id": "CT3"})
    facts = ADULT_CT.model_copy(update={"area": "opd"})
    areas = {"opd": Area(id="opd", building="A", floor=1)}
    shorter = choose_room([CT1, twin], facts, waiting={"CT1": 4, "CT3": 1}, areas=areas)
    assert shorter.room_id == "CT3" and "shorter queue than CT1" in shorter.why
    booked = choose_room([CT1, twin], facts.model_copy(update={"booked_room": "CT3"}), waiting={"CT1": 2, "CT3": 2},
                         areas=areas)
    assert booked.room_id == "CT3" and "the booked room" in booked.why
    by_id = choose_room([twin, CT1], facts, waiting={}, areas=areas)
    assert by_id.room_id == "CT1" and "by room id" in by_id.why


def test_distance_beats_queue_length():
    facts = ADULT_CT.model_copy(update={"area": "ward"})
    choice = choose_room([CT1, CT2], facts, waiting={"CT1": 9, "CT2": 0},
                         matrix={("ward", "CT1"): 5, ("ward", "CT2"): 80})
    assert choice.room_id == "CT1"


def test_critical_patient_is_told_they_are_called_first_and_no_room_lists_every_refusal():
    critical = choose_room([CT1], ADULT_CT.model_copy(update={"critical": True}), waiting={})
    assert "critical patient: called first" in critical.why and "the only suitable room" in critical.why
    with pytest.raises(NoSuitableRoom) as err:
        choose_room([MR1, CT1.model_copy(update={"active": False})], ADULT_CT, waiting={})
    assert {r.code for r in err.value.refusals} == {"modality", "inactive"}
