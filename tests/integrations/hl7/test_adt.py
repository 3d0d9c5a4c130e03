"""ADT A01/A04/A08 over a real socket into patient rows, through the EMPI (no Temporal needed)."""
from __future__ import annotations

import asyncio
from datetime import date

from sqlmodel import Session, select

from core.db import get_engine
from domain.empi_tables import PatientMatchReview
from domain.hl7_tables import HL7Message
from domain.orders import OrderIn
from domain.tables import DomainEvent, ExamOrder, Patient, PatientIdentifier
from integrations.hl7.context import new_session
from security.field_crypto import clear_phone, identifier_index
from services.order_intake import record_order
from tests.integrations.hl7.conftest import counts
from tests.integrations.hl7.messages import ack_fields, err_segments, msh, pid
from tests.support.loop_driver import order_payload

ID_CARD = "110101197005010013"


def adt(event: str, control_id: str, pid_segment: str, charset: str = "UNICODE UTF-8") -> str:
    return "\r".join([msh(f"ADT^{event}^ADT_A01", control_id, charset=charset), pid_segment,
                      "PV1|1|O|RESP"])


def patient_by(system: str, value: str) -> Patient:
    with Session(get_engine()) as s:
        ident = s.exec(select(PatientIdentifier).where(
            PatientIdentifier.system == system,
            PatientIdentifier.value_bidx == identifier_index(system, value))).one()
        return s.get(Patient, ident.patient_id)


async def test_a01_registers_a04_links_on_the_id_card_and_a08_updates(listener_on_each_database) -> None:
    offline_listener = listener_on_each_database
    ack = await offline_listener.send(adt("A01", "ADT-1", pid(
        "MRN-A1", name="张^三", extra={3: f"MRN-A1^^^MRN^MR~{ID_CARD}^^^CHN^NNCHN", 13: "^^^^^^13800000000"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AA", ack
    p = patient_by("ID_CARD", ID_CARD)
    assert (p.name, p.sex, p.birth_date, clear_phone(p), p.name_key) == ("张三", "M", date(1970, 5, 1),
                                                                         "13800000000", "zhangsan")
    assert p.phone == "138****0000"  # the row itself keeps the display form only
    assert patient_by("MRN", "MRN-A1").id == p.id
    # Another campus registers the same ID card with its own MRN: same person, one more identifier.
    ack = await offline_listener.send(adt("A04", "ADT-2", pid(
        "", name="张^三", extra={3: f"B-77^^^MRN:WEST^MR~{ID_CARD}^^^CHN^NNCHN"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AA"
    assert patient_by("MRN:WEST", "B-77").id == p.id
    assert counts()["patients"] == 1
    # A08: the name was misspelled at registration; an open order sees it on its timeline.
    order = OrderIn.model_validate(order_payload(patient={
        "identifiers": [{"system": "MRN", "value": "MRN-A1"}], "name": "张三", "sex": "M", "birth_date": "1970-05-01"}))
    placed = (await asyncio.to_thread(record_order, new_session, order)).order
    ack = await offline_listener.send(adt("A08", "ADT-3", pid("MRN-A1", name="张^叁", dob="")).encode())
    assert ack_fields(ack)["MSA"][1] == "AA"
    p = patient_by("MRN", "MRN-A1")
    assert (p.name, p.birth_date, clear_phone(p)) == ("张叁", date(1970, 5, 1), "13800000000")  # empty = not sent
    with Session(get_engine()) as s:
        events = s.exec(select(DomainEvent).where(DomainEvent.accession_number == placed.accession_number,
                                                  DomainEvent.kind == "patient_updated")).all()
        assert [e.detail["changed"]["name"] for e in events] == [["张三", "张叁"]]
        assert s.get(ExamOrder, placed.accession_number).patient_id == p.id


async def test_a08_for_an_unknown_patient_and_missing_fields_are_ae(offline_listener) -> None:
    ack = await offline_listener.send(adt("A08", "ADT-10", pid("NOBODY")).encode())
    assert ack_fields(ack)["MSA"][1] == "AE" and "204^" in err_segments(ack)[0]
    ack = await offline_listener.send(adt("A01", "ADT-11", pid("M-11", dob="", sex="")).encode())
    errs = err_segments(ack)
    assert ack_fields(ack)["MSA"][1] == "AE"
    assert any("PID^1^7" in e and "101^" in e for e in errs) and any("PID^1^8" in e for e in errs)
    ack = await offline_listener.send(adt("A01", "ADT-12", pid(
        "", extra={3: "110101197005010014^^^CHN^NNCHN"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AE" and "check digit" in ack.decode()
    assert counts()["patients"] == 0


async def test_a_possible_same_person_is_queued_for_review_never_merged(listener_on_each_database) -> None:
    offline_listener = listener_on_each_database
    await offline_listener.send(adt("A01", "ADT-20", pid("M-20", name="欧阳^娜娜", sex="F",
                                                         extra={13: "^^^^^^13900000000"})).encode())
    # Another desk registers her with a hospital card only, her name in pinyin, the same phone.
    ack = await offline_listener.send(adt("A04", "ADT-21", pid(
        "", name="OUYANG^NANA", sex="F", extra={3: "C-555^^^^HC", 13: "^^^^^^13900000000"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AA" and "possible same person" in ack.decode()
    first, second = patient_by("MRN", "M-20"), patient_by("HOSPITAL_CARD", "C-555")
    assert first.id != second.id
    with Session(get_engine()) as s:
        review = s.exec(select(PatientMatchReview)).one()
    assert {review.patient_a, review.patient_b} == {first.id, second.id} and review.state == "open"
    assert review.score >= 0.6 and "same phone" in review.reasons
    # Someone unrelated with the same birth date is not queued.
    await offline_listener.send(adt("A04", "ADT-22", pid("M-22", name="李^四", sex="M")).encode())
    with Session(get_engine()) as s:
        assert len(s.exec(select(PatientMatchReview)).all()) == 1


async def test_identifiers_of_two_different_patients_are_ae_205(offline_listener) -> None:
    await offline_listener.send(adt("A01", "ADT-30", pid("M-30", name="王^五")).encode())
    await offline_listener.send(adt("A01", "ADT-31", pid("M-31", name="赵^六")).encode())
    ack = await offline_listener.send(adt("A08", "ADT-32", pid(
        "", name="王^五", extra={3: "M-30^^^MRN^MR~M-31^^^MRN^MR"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AE" and "205^" in err_segments(ack)[0]
    assert patient_by("MRN", "M-30").name == "王五" and patient_by("MRN", "M-31").name == "赵六"


async def test_gb18030_registration_round_trips(offline_listener) -> None:
    text = adt("A01", "ADT-40", pid("M-40", name="司马^懿"), charset="GB18030")
    ack = await offline_listener.send(text.encode("gb18030"))
    assert ack_fields(ack, "gb18030")["MSA"][1] == "AA"
    assert patient_by("MRN", "M-40").name == "司马懿"


async def test_the_id_card_fills_and_checks_birth_date_and_sex(offline_listener) -> None:
    card = "110101198002290026"  # born 1980-02-29, 17th digit even: female
    ack = await offline_listener.send(adt("A01", "ADT-50", pid("", name="李^娜", dob="", sex="", extra={
        3: f"{card}^^^CHN^NNCHN"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AA", ack
    p = patient_by("ID_CARD", card)
    assert (p.birth_date, p.sex) == (date(1980, 2, 29), "F")
    ack = await offline_listener.send(adt("A04", "ADT-51", pid("", name="李^娜", dob="19800301", sex="F", extra={
        3: f"{card}^^^CHN^NNCHN"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AE" and "PID^1^7" in err_segments(ack)[0] and "contradicts" in ack.decode()
    ack = await offline_listener.send(adt("A04", "ADT-52", pid("", name="李^娜", sex="M", dob="", extra={
        3: f"{card}^^^CHN^NNCHN"})).encode())
    assert ack_fields(ack)["MSA"][1] == "AE" and "PID^1^8" in err_segments(ack)[0]


async def test_racing_registrations_make_one_patient(listener_on_each_database) -> None:
    offline_listener = listener_on_each_database
    # The same message on two connections at once, and the same person under two control IDs.
    same = adt("A01", "RACE-1", pid("M-RACE", name="周^七")).encode()
    other = adt("A04", "RACE-2", pid("M-RACE", name="周^七")).encode()
    acks = await asyncio.gather(*(offline_listener.send(m) for m in (same, same, other, same)))
    assert {ack_fields(a)["MSA"][1] for a in acks} == {"AA"}, [a for a in acks if b"MSA|AA" not in a]
    assert counts()["patients"] == 1
    with Session(get_engine()) as s:
        rows = s.exec(select(HL7Message).where(HL7Message.control_id == "RACE-1")).all()
    assert len(rows) == 3 and sum(r.dedup_key is not None for r in rows) == 1
    assert {r.status for r in rows if r.dedup_key is None} == {"duplicate"}


async def test_a_common_name_queues_only_the_likeliest_few(offline_listener) -> None:
    for n in range(7):  # seven namesakes born the same day, each with their own MRN
        await offline_listener.send(adt("A04", f"NS-{n}", pid(f"M-NS{n}", name="王^伟")).encode())
    last = patient_by("MRN", "M-NS6")
    with Session(get_engine()) as s:
        pairs = s.exec(select(PatientMatchReview).where(
            (PatientMatchReview.patient_a == last.id) | (PatientMatchReview.patient_b == last.id))).all()
    assert len(pairs) == 5
