"""Smart triage against the database (SQLite and PostgreSQL): check-in queues the patient in the
room triage chooses and keeps why; isolation patients get a gap; one-exam orders merge; a
person's override is logged."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlmodel import Session, select

from core.db import get_engine
from domain.queue_tables import QueueCall, QueueTicket, QueueTicketItem, TriageDecision
from domain.tables import DomainEvent, ExamOrder, Patient
from services import queueing, triage
from services.errors import Conflict, NotFound

AT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def order(acc: str, patient: str = "p1", *, modality: str = "CT", part: str = "CHEST", code: str = "CT-CHEST",
          sex: str = "M", born: date = date(1970, 1, 1), **flags) -> str:
    with Session(get_engine()) as s:
        if s.get(Patient, patient) is None:
            s.add(Patient(id=patient, name=f"患者{patient}", sex=sex, birth_date=born))
            s.flush()
        s.add(ExamOrder(accession_number=acc, workflow_id=f"exam-loop-{acc}", placer_system="HIS",
                        placer_order_number=f"PO-{acc}", patient_id=patient, procedure_code=code,
                        procedure_name=code, modality=modality, body_part=part, priority="routine",
                        ordering_clinician_id="c", ordering_clinician_name="Dr", ordering_department="respiratory",
                        **flags))
        s.commit()
    return acc


@pytest.fixture
def site(database):
    """Two CT rooms in two buildings: CT1 by the outpatients (no beds), CT2 by the wards."""
    with Session(get_engine()) as s:
        triage.set_area(s, "opd", triage.AreaIn(name="Outpatients", building="OPD", floor=1))
        triage.set_area(s, "ward-5", triage.AreaIn(name="Ward 5", building="WARD", floor=5))
        triage.set_profile(s, "CT1", triage.ProfileIn(building="OPD", floor=1, accepts_bed=False), "u-manager")
        triage.set_profile(s, "CT2", triage.ProfileIn(building="WARD", floor=1), "u-manager")


def test_check_in_queues_in_the_nearest_room_and_keeps_why(site):
    order("A1")
    triage.record_facts("A1", triage.FactsIn(area_id="ward-5"), "u-registrar")
    out = queueing.check_in("A1", "CT1", "u-registrar", AT)  # booked CT1, comes from ward 5
    assert out.queue_id == "room-CT2" and out.triage is not None
    assert out.triage.room_id == "CT2" and "140 m from ward-5 (estimate)" in out.triage.why
    again = queueing.check_in("A1", "CT1", "u-registrar", AT)  # a retried activity
    assert again.id == out.id
    [decision] = triage.decisions("A1")
    assert (decision.kind, decision.room_id, decision.ticket_id) == ("triage", "CT2", out.id)
    assert decision.detail["ranking"][0]["room_id"] == "CT2"
    assert {r["room_id"]: r["code"] for r in decision.detail["refusals"]}["MR1"] == "modality"
    with Session(get_engine()) as s:
        event = s.exec(select(DomainEvent).where(DomainEvent.kind == "triaged")).one()
        assert event.accession_number == "A1" and "CT2" in event.summary


def test_bed_patient_is_refused_by_a_room_without_bed_access(site):
    order("B1")
    triage.record_facts("B1", triage.FactsIn(area_id="opd", transport="bed"), "u-nurse")
    preview = triage.preview("B1", AT)
    assert preview.room_id == "CT2"
    assert any(r.room_id == "CT1" and r.code == "transport" for r in preview.refusals)
    with pytest.raises(NotFound, match="no area"):
        triage.record_facts("B1", triage.FactsIn(area_id="nowhere"), "u-nurse")


def test_tie_on_distance_goes_to_the_shorter_queue_then_the_booked_room(site):
    order("W0", "w0")
    order("W1", "w1")
    order("W2", "w2")
    assert queueing.check_in("W0", "CT1", "u-registrar", AT).queue_id == "room-CT1"  # no area known, equal queues
    second = queueing.check_in("W1", "CT1", "u-registrar", AT)
    assert second.queue_id == "room-CT2" and "shorter queue than CT1" in second.triage.why
    third = queueing.check_in("W2", "CT2", "u-registrar", AT)
    assert third.queue_id == "room-CT2" and "the booked room" in third.triage.why


def test_isolation_patient_goes_to_the_designated_room_and_critical_is_called_first(site):
    with Session(get_engine()) as s:
        triage.set_profile(s, "CT2", triage.ProfileIn(building="WARD", floor=1, isolation_room=True), "u-manager")
    order("M1", special_mdro=True)
    triage.record_facts("M1", triage.FactsIn(area_id="opd"), "u-registrar")
    out = queueing.check_in("M1", "CT1", "u-registrar", AT)
    assert out.queue_id == "room-CT2" and "designated isolation room" in out.triage.why
    order("R1", "r1")
    order("K1", "k1", special_critical=True)
    queueing.check_in("R1", "CT1", "u-registrar", AT)
    crit = queueing.check_in("K1", "CT1", "u-registrar", AT)
    assert (crit.tier, crit.tier_reason) == (0, "critical patient first")
    assert queueing.call_next("CT1", "u-tech").accession_number == "K1"


def test_two_isolation_patients_in_one_queue_are_separated_by_the_next_arrival(site):
    with Session(get_engine()) as s:
        triage.set_profile(s, "CT2", triage.ProfileIn(active=False), "u-manager")
    accs = [order(f"I{n}", f"i{n}", special_infectious=n in (0, 1)) for n in range(3)]
    tickets = [queueing.check_in(a, "CT1", "u-registrar", AT) for a in accs]
    assert {t.queue_id for t in tickets} == {"room-CT1"}  # the only CT room open
    # I2 (ordinary) arrived last but is queued between the two infectious patients.
    assert [queueing.call_next("CT1", "u-tech").accession_number for _ in range(3)] == ["I0", "I2", "I1"]
    # An elderly MDRO patient comes first by care tier, right before an MDRO patient waiting
    # ahead of an ordinary one: the ordinary patient moves up to keep them apart (logged).
    order("J0", "j0", special_mdro=True)
    order("J1", "j1")
    order("J2", "j2", born=date(1930, 1, 1), special_mdro=True)
    j0, j1, j2 = (queueing.check_in(a, "CT1", "u-registrar", AT) for a in ("J0", "J1", "J2"))
    assert j2.tier < j0.tier
    assert [queueing.call_next("CT1", "u-tech").accession_number for _ in range(3)] == ["J2", "J1", "J0"]
    with Session(get_engine()) as s:
        gap = s.exec(select(QueueCall).where(QueueCall.mode == "gap")).one()
        assert gap.ticket_id == j1.id and j2.id in gap.detail
        assert s.get(QueueTicket, j0.id).isolation and not s.get(QueueTicket, j1.id).isolation


def test_one_exam_orders_merge_and_the_ticket_finishes_with_its_last_item(site):
    order("X1", part="CHEST")
    order("X2", code="CT-ABD", part="ABDOMEN")
    order("X3", modality="MR", code="MR-HEAD", part="HEAD")
    first = queueing.check_in("X1", "CT1", "u-registrar", AT)
    merged = queueing.check_in("X2", "CT1", "u-registrar", AT)
    assert merged.id == first.id and merged.merged_into == first.id
    separate = queueing.check_in("X3", "MR1", "u-registrar", AT)
    assert separate.id != first.id
    kinds = {d.kind: d for d in triage.decisions("X2")}
    assert kinds["merge"].detail["merge_rule"] == "CT chest-abdomen-pelvis in one scan"
    assert "different modalities" in next(iter(triage.decisions("X3")[0].detail["split"].values()))
    queueing.loop_state("X1", "called", "u-tech", "CT1")
    queueing.loop_state("X2", "called", "u-tech", "CT1")  # already called: nothing
    queueing.loop_state("X1", "done", "u-tech", "CT1")
    with Session(get_engine()) as s:
        assert s.get(QueueTicket, first.id).state == "called"  # X2 is still being scanned
    queueing.loop_state("X2", "done", "u-tech", "CT1")
    with Session(get_engine()) as s:
        assert s.get(QueueTicket, first.id).state == "done"
        items = s.exec(select(QueueTicketItem).where(QueueTicketItem.ticket_id == first.id)).all()
        assert {(i.accession_number, i.state, i.live_accession) for i in items} == {
            ("X1", "done", None), ("X2", "done", None)}


def test_preparation_stage_keeps_items_apart(site):
    from services.booking_calendar import active_rules

    with Session(get_engine()) as s:
        prepared = [code for code, r in active_rules(s).exam_types.items() if r.prep_minutes > 0 and r.modality == "CT"]
    if not prepared:
        pytest.skip("no CT exam with preparation in the active booking rules")
    order("P1", part="CHEST")
    order("P2", code=prepared[0].lstrip("*"), part="ABDOMEN")
    a = queueing.check_in("P1", "CT1", "u-registrar", AT)
    b = queueing.check_in("P2", "CT1", "u-registrar", AT)
    assert a.id != b.id
    assert "preparation stage" in next(iter(triage.decisions("P2")[0].detail["split"].values()))


def test_override_moves_the_patient_with_a_logged_reason(site):
    order("O1")
    triage.record_facts("O1", triage.FactsIn(area_id="opd", transport="bed"), "u-registrar")
    out = queueing.check_in("O1", "CT1", "u-registrar", AT)
    assert out.queue_id == "room-CT2"
    with pytest.raises(Conflict, match="does not do CT"):
        queueing.override_room(out.id, "MR1", "wrong room", "u-nurse")
    moved = queueing.override_room(out.id, "CT1", "CT2 is down for service; porters can lift", "u-nurse")
    assert moved.queue_id == "room-CT1" and moved.state == "waiting"
    with Session(get_engine()) as s:
        call = s.exec(select(QueueCall).where(QueueCall.mode == "override")).one()
        assert (call.actor, call.room_id) == ("u-nurse", "CT1") and "porters can lift" in call.detail
        row = s.exec(select(TriageDecision).where(TriageDecision.kind == "override")).one()
        assert row.detail["overrides"][0]["code"] == "transport" and row.actor == "u-nurse"
        assert s.exec(select(DomainEvent).where(DomainEvent.kind == "triage_overridden")).one()
    with pytest.raises(Conflict, match="already queues"):
        queueing.override_room(out.id, "CT1", "again", "u-nurse")


def test_published_rules_are_versioned_and_apply_to_the_next_check_in(site):
    with Session(get_engine()) as s:
        assert triage.current_rules(s).version == 1
        rules = triage.publish_rules(s, triage.RulesIn(merge_rules=[]), "u-manager")
        assert rules.version == 2 and triage.current_rules(s).merge_rules == ()
    order("V1", part="CHEST")
    order("V2", code="CT-ABD", part="ABDOMEN")
    a = queueing.check_in("V1", "CT1", "u-registrar", AT)
    b = queueing.check_in("V2", "CT1", "u-registrar", AT)
    assert a.id != b.id and triage.decisions("V2")[0].rules_version == 2


def test_the_worklist_step_follows_the_patient_to_the_chosen_room(site):
    """The modality in the room triage chose must find the patient on its worklist (R4.2.2)."""
    from domain.tables import Room, WorklistEntry

    order("W1")
    with Session(get_engine()) as s:
        ct1, ct2 = s.get(Room, "CT1"), s.get(Room, "CT2")
        s.add(WorklistEntry(id="SPS-W1", accession_number="W1", patient_id="p1", modality="CT",
                            station_ae_title=ct1.station_ae_title, room_id="CT1", scheduled_start=AT,
                            procedure_code="CT-CHEST", procedure_name="CT chest", study_instance_uid="1.2.3.9"))
        s.commit()
        ct1_ae, ct2_ae = ct1.station_ae_title, ct2.station_ae_title
    assert ct1_ae != ct2_ae
    triage.record_facts("W1", triage.FactsIn(area_id="ward-5"), "u-registrar")
    out = queueing.check_in("W1", "CT1", "u-registrar", AT)
    assert out.queue_id == "room-CT2"
    with Session(get_engine()) as s:
        step = s.get(WorklistEntry, "SPS-W1")
        assert (step.room_id, step.station_ae_title) == ("CT2", ct2_ae)
        moved = s.exec(select(DomainEvent).where(DomainEvent.kind == "worklist_moved")).one()
        assert moved.detail == {"step": "SPS-W1", "from": ct1_ae, "to": ct2_ae}
    queueing.override_room(out.id, "CT1", "CT2 is down for service", "u-nurse")
    with Session(get_engine()) as s:
        step = s.get(WorklistEntry, "SPS-W1")
        assert (step.room_id, step.station_ae_title) == ("CT1", ct1_ae)


def test_a_check_in_retried_after_an_interruption_still_records_the_decision(site):
    """The first try wrote the ticket and stopped; the retry writes the decision and event it missed."""
    order("R1")
    out = queueing.check_in("R1", "CT1", "u-registrar", AT)
    with Session(get_engine()) as s:  # as if the first try had stopped right after the ticket
        for row in s.exec(select(TriageDecision).where(TriageDecision.accession_number == "R1")).all():
            s.delete(row)
        for row in s.exec(select(DomainEvent).where(DomainEvent.accession_number == "R1",
                                                    DomainEvent.kind == "triaged")).all():
            s.delete(row)
        s.commit()
    again = queueing.check_in("R1", "CT1", "u-registrar", AT)
    assert again.id == out.id
    [decision] = triage.decisions("R1")
    assert decision.ticket_id == out.id and "recorded on retry" in decision.why
    queueing.check_in("R1", "CT1", "u-registrar", AT)
    assert len(triage.decisions("R1")) == 1
