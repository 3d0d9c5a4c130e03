"""The EMPI review queue over HTTP: list the pairs, keep them separate or link (merge) them."""
from __future__ import annotations

from datetime import date

from sqlmodel import Session

from core.db import get_engine
from domain.empi import PersonFacts
from domain.empi_tables import PatientMatchReview
from domain.orders import PatientIdentifier as IdentifierIn
from domain.tables import Patient
from services.patient_registry import register


def _sessions() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def _register(mrn: str, name: str, phone: str = "13812345678") -> tuple[str, list[tuple[str, float]]]:
    reg = register(_sessions, PersonFacts(identifiers=[IdentifierIn(system="MRN", value=mrn)], name=name, sex="M",
                                          birth_date=date(1970, 5, 1), phone=phone), f"test:{mrn}")
    return reg.patient_id, reg.reviews


async def test_registrar_lists_and_keeps_a_pair_separate(api, auth) -> None:
    a, _ = _register("M-E1", "张三")
    b, reviews = _register("M-E2", "张叁")
    assert [other for other, _ in reviews] == [a]
    r = await api.get("/api/v1/empi/reviews", headers=auth("registrar"))
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert {p["patient_id"] for p in item["patients"]} == {a, b} and item["state"] == "open" and item["score"] > 0
    r = await api.post(f"/api/v1/empi/reviews/{item['id']}/resolve", headers=auth("registrar"),
                       json={"decision": "keep_separate", "reason": "different fathers' names on the ID cards"})
    assert r.status_code == 200, r.text
    review = r.json()["review"]
    assert review["state"] == "different_people" and review["decided_by"] == "user:u-registrar"
    assert review["decision"]["reason"].startswith("different fathers")
    again = await api.post(f"/api/v1/empi/reviews/{item['id']}/resolve", headers=auth("registrar"),
                           json={"decision": "link", "reason": "changed my mind"})
    assert again.status_code == 409 and "already decided" in again.json()["detail"]
    assert (await api.get("/api/v1/empi/reviews", headers=auth("registrar"))).json()["items"] == []
    decided = await api.get("/api/v1/empi/reviews?state=different_people", headers=auth("manager"))
    assert [i["id"] for i in decided.json()["items"]] == [item["id"]]


async def test_registrar_links_a_pair_into_the_chosen_survivor(api, auth) -> None:
    a, _ = _register("M-L1", "李四", "13900001111")
    b, _ = _register("M-L2", "李肆", "13900001111")
    with Session(get_engine()) as s:
        review = s.query(PatientMatchReview).one()
    bad = await api.post(f"/api/v1/empi/reviews/{review.id}/resolve", headers=auth("registrar"),
                         json={"decision": "link", "reason": "same person", "surviving_patient_id": "someone-else"})
    assert bad.status_code == 422 and "surviving_patient_id must be" in bad.json()["detail"]
    missing_reason = await api.post(f"/api/v1/empi/reviews/{review.id}/resolve", headers=auth("registrar"),
                                    json={"decision": "link"})
    assert missing_reason.status_code == 422
    r = await api.post(f"/api/v1/empi/reviews/{review.id}/resolve", headers=auth("registrar"),
                       json={"decision": "link", "reason": "same ID card seen at the desk", "surviving_patient_id": b})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["merge_id"] and body["review"]["state"] == "same_person"
    assert body["review"]["decision"]["surviving_id"] == b
    with Session(get_engine()) as s:
        assert s.get(Patient, a).merged_into == b and s.get(Patient, b).merged_into is None
    unknown = await api.post("/api/v1/empi/reviews/nope/resolve", headers=auth("registrar"),
                             json={"decision": "keep_separate", "reason": "x"})
    assert unknown.status_code == 404
    # Only the registrar decides; a manager may look.
    assert (await api.post(f"/api/v1/empi/reviews/{review.id}/resolve", headers=auth("manager"),
                           json={"decision": "keep_separate", "reason": "x"})).status_code == 403


async def test_registrar_undoes_a_merge_once(api, auth) -> None:
    a, _ = _register("M-U1", "王五", "13700002222")
    b, _ = _register("M-U2", "王伍", "13700002222")
    with Session(get_engine()) as s:
        review = s.query(PatientMatchReview).one()
    linked = await api.post(f"/api/v1/empi/reviews/{review.id}/resolve", headers=auth("registrar"),
                            json={"decision": "link", "reason": "same person", "surviving_patient_id": a})
    merge_id = linked.json()["merge_id"]
    r = await api.post(f"/api/v1/empi/merges/{merge_id}/undo", headers=auth("registrar"))
    assert r.status_code == 200, r.text
    assert (r.json()["restored_patient_id"], r.json()["surviving_patient_id"]) == (b, a)
    with Session(get_engine()) as s:
        assert s.get(Patient, b).merged_into is None
    again = await api.post(f"/api/v1/empi/merges/{merge_id}/undo", headers=auth("registrar"))
    assert again.status_code == 409 and "already undone" in again.json()["detail"]
    assert (await api.post("/api/v1/empi/merges/nope/undo", headers=auth("registrar"))).status_code == 404


async def test_review_shows_personal_numbers_by_role(api, auth) -> None:
    """Numbers are sealed at rest: the registrar's view unseals them, the manager's shows the stored mask."""
    card, insurance = "11010119700501123X", "BJ1000234567"
    for mrn, ident in (("M-N1", IdentifierIn(system="ID_CARD", value=card)),
                       ("M-N2", IdentifierIn(system="INSURANCE", value=insurance))):
        register(_sessions, PersonFacts(identifiers=[IdentifierIn(system="MRN", value=mrn), ident], name="王五",
                                        sex="M", birth_date=date(1970, 5, 1)), f"test:{mrn}")

    async def numbers(role: str) -> set[str]:
        r = await api.get("/api/v1/empi/reviews", headers=auth(role))
        assert r.status_code == 200, r.text
        return {i["value"] for p in r.json()["items"][0]["patients"] for i in p["identifiers"]}

    assert await numbers("registrar") == {"M-N1", "M-N2", card, insurance}
    assert await numbers("manager") == {"M-N1", "M-N2", "1101**********123X", "********4567"}
