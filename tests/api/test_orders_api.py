"""Orders over REST without a loop behind them: validation and reading an order back."""
from __future__ import annotations

import copy

from sqlmodel import func, select

from domain.tables import ExamOrder, Patient, PatientIdentifier

ORDER = {
    "placer_order_number": "PO-77",
    "placer_system": "HIS",
    "patient": {
        "identifiers": [{"system": "MRN", "value": "M-77"}],
        "name": "王小明",
        "sex": "M",
        "birth_date": "1975-03-04",
    },
    "procedure": {"code": "CT-CH", "name": "CT chest", "modality": "CT", "body_part": "CHEST"},
    "priority": "urgent",
    "ordering": {"clinician_id": "c-9", "clinician_name": "Dr Zhao", "department": "Respiratory"},
    "clinical": {"history": "cough 3 weeks", "diagnosis": "pneumonia?", "purpose": "rule out mass"},
}


def _count(session, table) -> int:
    return session.exec(select(func.count()).select_from(table)).one()


async def test_invalid_order_is_422_listing_each_field_and_creates_nothing(api, auth, session):
    bad = copy.deepcopy(ORDER)
    bad["patient"]["sex"] = "X"
    bad["patient"]["identifiers"] = []
    bad["procedure"]["modality"] = "computed tomography"
    bad["priority"] = "whenever"
    del bad["ordering"]["department"]
    bad["unexpected"] = 1

    r = await api.post("/api/v1/orders", json=bad, headers=auth("his_system"))

    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["detail"]}
    assert fields == {
        "patient.sex", "patient.identifiers", "procedure.modality", "priority", "ordering.department", "unexpected",
    }
    assert all(e["msg"] for e in r.json()["detail"])
    assert "王小明" not in r.text, "validation errors must not echo patient data"
    for table in (ExamOrder, Patient, PatientIdentifier):
        assert _count(session, table) == 0


async def test_future_birth_date_is_a_field_reason(api, auth):
    bad = copy.deepcopy(ORDER)
    bad["patient"]["birth_date"] = "2999-01-01"
    r = await api.post("/api/v1/orders", json=bad, headers=auth("clinician"))
    assert r.status_code == 422
    [err] = r.json()["detail"]
    assert err["field"] == "patient.birth_date"
    assert "future" in err["msg"]


async def test_valid_order_while_temporal_is_down_is_503_and_writes_nothing(api, auth, session):
    r = await api.post("/api/v1/orders", json=ORDER, headers=auth("registrar"))
    assert r.status_code == 503
    assert _count(session, ExamOrder) == 0


async def test_get_order_returns_the_row_with_its_step(api, auth, make_order):
    make_order("A2026010100009", step="scheduled", priority="stat")
    r = await api.get("/api/v1/orders/A2026010100009", headers=auth("clinician"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accession_number"] == "A2026010100009"
    assert body["workflow_id"] == "exam-loop-A2026010100009"
    assert body["step"] == "scheduled"
    assert body["priority"] == "stat"
    assert body["patient_name"] == "Zhang San"
    assert body["procedure"]["modality"] == "CT"


async def test_get_unknown_order_is_404(api, auth):
    r = await api.get("/api/v1/orders/A0", headers=auth("clinician"))
    assert r.status_code == 404
    assert r.json() == {"detail": "no order with accession number A0"}


async def test_unknown_procedure_code_is_a_field_reason_and_creates_nothing(api, auth, session):
    bad = copy.deepcopy(ORDER)
    bad["procedure"]["code"] = "CT-NOSUCH"
    r = await api.post("/api/v1/orders", json=bad, headers=auth("his_system"))
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["field"] == "procedure.code" and "unknown procedure code" in err["msg"]
    assert err["type"] == "unknown_procedure"
    wrong_modality = copy.deepcopy(ORDER)
    wrong_modality["procedure"]["modality"] = "MR"
    r = await api.post("/api/v1/orders", json=wrong_modality, headers=auth("his_system"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "procedure.modality"
    for table in (ExamOrder, Patient, PatientIdentifier):
        assert _count(session, table) == 0
