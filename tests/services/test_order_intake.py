"""Order intake under concurrency: one patient per person, one order per placer number (R5.1.2)."""
from __future__ import annotations

import threading

from sqlmodel import Session, func, select

from core.db import get_engine
from domain.orders import OrderIn
from domain.tables import ExamOrder, Patient, PatientIdentifier
from services.order_intake import record_order
from tests.support.loop_driver import order_payload


def _session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def test_concurrent_orders_for_one_new_patient_make_one_patient(database) -> None:
    patient = order_payload()["patient"]
    orders = [OrderIn.model_validate(order_payload(patient=patient)) for _ in range(6)]
    barrier = threading.Barrier(len(orders))
    results, errors = [], []

    def place(o: OrderIn) -> None:
        barrier.wait()
        try:
            results.append(record_order(_session, o))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=place, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(get_engine()) as s:
        assert s.exec(select(func.count()).select_from(Patient)).one() == 1
        assert s.exec(select(func.count()).select_from(PatientIdentifier)).one() == 1
        assert len({o.patient_id for o in s.exec(select(ExamOrder))}) == 1
    assert len({r.order.accession_number for r in results}) == 6
