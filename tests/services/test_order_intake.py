"""Order intake under concurrency: one patient per person, one order per placer number (R5.1.2)."""
from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlmodel import Session, func, select

from core.db import get_engine
from domain.orders import OrderIn
from domain.tables import ExamOrder, Patient, PatientIdentifier
from domain.empi import PersonFacts
from services.order_intake import IdentifierRace, IntakeResult, record_order
from services.patient_registry import RegisteredMeanwhile, register_in
from tests.support.loop_driver import order_payload


def _session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def _record_at_once(orders: list[OrderIn], record: Callable[[OrderIn], IntakeResult]
                    ) -> tuple[list[IntakeResult], list[Exception]]:
    """Each order recorded by its own thread, all released together: what succeeded, what raised."""
    barrier = threading.Barrier(len(orders))
    results: list[IntakeResult] = []
    errors: list[Exception] = []

    def place(o: OrderIn) -> None:
        barrier.wait()
        try:
            results.append(record(o))
        except Exception as err:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(err)

    threads = [threading.Thread(target=place, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_concurrent_orders_for_one_new_patient_make_one_patient(database) -> None:
    patient = order_payload()["patient"]
    orders = [OrderIn.model_validate(order_payload(patient=patient)) for _ in range(6)]
    results, errors = _record_at_once(orders, lambda o: record_order(_session, o))
    assert errors == []
    with Session(get_engine()) as s:
        assert s.exec(select(func.count()).select_from(Patient)).one() == 1
        assert s.exec(select(func.count()).select_from(PatientIdentifier)).one() == 1
        assert len({o.patient_id for o in s.exec(select(ExamOrder))}) == 1
    assert len({r.order.accession_number for r in results}) == 6


def _empi_step(facts: PersonFacts):
    """The HL7 path's patient step: the EMPI's registration inside the order's transaction."""
    def step(session: Session) -> str:
        try:
            return register_in(session, facts, "test", update=False).patient_id
        except RegisteredMeanwhile as err:
            raise IdentifierRace(str(err)) from err
    return step


def _facts(order: OrderIn) -> PersonFacts:
    p = order.patient
    return PersonFacts(identifiers=p.identifiers, name=p.name, sex=p.sex.value, birth_date=p.birth_date)


def test_concurrent_orders_registering_through_the_empi_in_their_own_transaction_make_one_patient(database) -> None:
    patient = order_payload()["patient"]
    orders = [OrderIn.model_validate(order_payload(patient=patient)) for _ in range(6)]
    results, errors = _record_at_once(orders, lambda o: record_order(_session, o, _empi_step(_facts(o))))
    assert errors == []
    with Session(get_engine()) as s:
        assert s.exec(select(func.count()).select_from(Patient)).one() == 1
        assert s.exec(select(Patient)).one().name_key  # registered by the EMPI (matching keys), not bare intake
        assert s.exec(select(func.count()).select_from(PatientIdentifier)).one() == 1
        assert len({o.patient_id for o in s.exec(select(ExamOrder))}) == 1
    assert len({r.order.accession_number for r in results}) == 6


def test_patient_order_and_the_callers_rows_commit_together_or_not_at_all(database) -> None:
    order = OrderIn.model_validate(order_payload())

    def refuse(_session: Session, _result) -> None:
        raise RuntimeError("the caller's own row could not be written")

    with pytest.raises(RuntimeError):
        record_order(_session, order, _empi_step(_facts(order)), refuse)
    with Session(get_engine()) as s:
        assert s.exec(select(func.count()).select_from(Patient)).one() == 0
        assert s.exec(select(func.count()).select_from(ExamOrder)).one() == 0
    seen = []
    result = record_order(_session, order, _empi_step(_facts(order)), lambda _s, r: seen.append(r.created))
    assert result.created and seen == [True]
    again = record_order(_session, order, _empi_step(_facts(order)), lambda _s, r: seen.append(r.created))
    assert not again.created and seen == [True, False]  # called for a known order too


def test_an_identifier_sent_twice_in_one_registration_is_stored_once(database) -> None:
    order = OrderIn.model_validate(order_payload())
    facts = _facts(order)
    twice = facts.model_copy(update={"identifiers": [*facts.identifiers, *facts.identifiers]})
    result = record_order(_session, order, _empi_step(twice))
    assert result.created
    with Session(get_engine()) as s:
        assert s.exec(select(func.count()).select_from(PatientIdentifier)).one() == 1
        assert s.exec(select(PatientIdentifier)).one().patient_id == result.order.patient_id
