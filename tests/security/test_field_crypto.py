"""Identifier numbers and phones at rest (R10.2.2, R10.3.3): sealed with AES-GCM, matched by blind index.

The database tests run on SQLite and PostgreSQL and go through the EMPI service, the way ADT and
order intake register people. Personal numbers (ID card, insurance) and phones are nowhere in clear
in the rows; the center's record numbers (MRN) are, by design (security.field_crypto)."""
from __future__ import annotations

import base64
import os
from datetime import date

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlmodel import Session, select

from core.config import DEV_FIELD_KEY, reset_settings_cache
from core.db import get_engine, session_scope
from domain.empi import PersonFacts
from domain.orders import PatientIdentifier as IdentIn
from domain.empi_tables import PatientMatchReview
from domain.tables import Patient, PatientIdentifier
from security import field_crypto as fc
from services.empi_reviews import list_reviews
from services.patient_merge import merge
from services.patient_registry import register, update_demographics

ID_CARD = "11010119700501123X"
INSURANCE = "BJ1000234567"
PHONE = "13800138000"


def test_seal_is_bound_to_its_context_and_keys_rotate() -> None:
    sealed = fc.seal(ID_CARD, fc.identifier_context("ID_CARD"))
    assert ID_CARD not in sealed and sealed.startswith("dev1:")
    assert fc.seal(ID_CARD, fc.identifier_context("ID_CARD")) != sealed  # a fresh nonce every time
    assert fc.unseal(sealed, fc.identifier_context("ID_CARD")) == ID_CARD
    with pytest.raises(InvalidTag):
        fc.unseal(sealed, fc.identifier_context("INSURANCE"))  # moved to another domain: refused
    new = base64.b64encode(os.urandom(32)).decode()
    rotated = f"k2:{new},dev1:{DEV_FIELD_KEY}"
    assert fc.unseal(sealed, fc.identifier_context("ID_CARD"), rotated) == ID_CARD  # old key still opens
    assert fc.seal("x", "c", rotated).startswith("k2:")  # the first key seals


def test_blind_index_normalises_and_separates_domains() -> None:
    idx = fc.identifier_index("ID_CARD", ID_CARD)
    assert idx == fc.identifier_index("id_card", "110101 19700501 123x") and len(idx) == 64
    assert idx != fc.identifier_index("INSURANCE", ID_CARD)
    assert ID_CARD not in idx and ID_CARD.lower() not in idx
    assert fc.phone_index("+86 138-0013-8000") == fc.phone_index("13800138000")
    assert fc.phone_index("") is None and fc.phone_index("12") is None


def _facts(ident: str = ID_CARD, phone: str = "13800138000", name: str = "张三") -> PersonFacts:
    return PersonFacts(identifiers=[IdentIn(system="ID_CARD", value=ident)], name=name, sex="M",
                       birth_date=date(1970, 5, 1), phone=phone)


def test_rows_are_sealed_indexed_and_matched_by_index(database: str) -> None:
    first = register(session_scope, _facts(), "test")
    with Session(get_engine()) as s:
        row = s.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id == first.patient_id)).one()
        patient = s.get(Patient, first.patient_id)
    assert fc.unseal(row.value_enc, fc.identifier_context("ID_CARD")) == ID_CARD
    assert row.value_bidx == fc.identifier_index("ID_CARD", ID_CARD)
    assert fc.unseal(patient.phone_enc, fc.PHONE_CONTEXT) == "13800138000"
    assert patient.phone_bidx == fc.phone_index("13800138000")

    # Matching asks for the index only: with the clear column blanked out, the person is still found,
    # and a differently typed number (spaces, lower-case x) is the same number.
    with get_engine().begin() as conn:
        conn.execute(sa.text("UPDATE patient_identifier SET value = 'blanked' WHERE patient_id = :p"),
                     {"p": first.patient_id})
    again = register(session_scope, _facts(ident="110101 19700501 123x"), "test")
    assert again.patient_id == first.patient_id and not again.created

    # A phone change is re-sealed and re-indexed, and the phone still finds likely duplicates.
    update_demographics(session_scope, _facts(phone="+86 139 0000 0000"), "test")
    with Session(get_engine()) as s:
        patient = s.get(Patient, first.patient_id)
    assert fc.unseal(patient.phone_enc, fc.PHONE_CONTEXT) == "+86 139 0000 0000"
    other = register(session_scope, PersonFacts(identifiers=[IdentIn(system="MRN", value="M-9")], name="章三",
                                                sex="M", birth_date=date(1971, 6, 2), phone="13900000000"), "test")
    assert first.patient_id in [pid for pid, _score in other.reviews]


def test_reindex_after_a_key_change(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = register(session_scope, _facts(), "test")
    monkeypatch.setenv("RADLOOP_BLIND_INDEX_KEY", base64.b64encode(os.urandom(32)).decode())
    reset_settings_cache()
    with Session(get_engine()) as s:
        assert fc.reindex(s) >= 2
    again = register(session_scope, _facts(), "test")
    assert again.patient_id == first.patient_id and not again.created


def _person(ident: str = ID_CARD, mrn: str = "M-1", phone: str = PHONE) -> PersonFacts:
    return PersonFacts(identifiers=[IdentIn(system="MRN", value=mrn), IdentIn(system="ID_CARD", value=ident),
                                    IdentIn(system="INSURANCE", value=INSURANCE)],
                       name="张三", sex="M", birth_date=date(1970, 5, 1), phone=phone)


def _raw_rows() -> str:
    """Every column of every patient and identifier row, as the database holds them."""
    with get_engine().connect() as conn:
        rows = [*conn.execute(sa.text("SELECT * FROM patient_identifier")),
                *conn.execute(sa.text("SELECT * FROM patient"))]
    return "\n".join("|".join(str(v) for v in row) for row in rows)


def _clear_copies(raw: str) -> list[str]:
    needles = [ID_CARD, ID_CARD.lower(), ID_CARD[6:14], INSURANCE, PHONE, PHONE[3:7] + PHONE[7:]]
    return [n for n in needles if n in raw]


def test_personal_numbers_and_phones_are_nowhere_in_clear(database: str) -> None:
    first = register(session_scope, _person(), "test")
    raw = _raw_rows()
    assert _clear_copies(raw) == [], raw
    assert "M-1" in raw  # the record number stays clear: DICOM PatientID and HL7 routing use it
    with Session(get_engine()) as s:
        rows = {r.system: r for r in s.exec(select(PatientIdentifier).where(
            PatientIdentifier.patient_id == first.patient_id))}
        patient = s.get(Patient, first.patient_id)
    # The clear columns hold the display form; an entitled reader unseals through the one helper.
    assert rows["ID_CARD"].value == "1101**********123X" and rows["INSURANCE"].value == "********4567"
    assert patient is not None and patient.phone == "138****8000"
    assert {k: fc.clear_identifier(r) for k, r in rows.items()} == {"MRN": "M-1", "ID_CARD": ID_CARD,
                                                                  "INSURANCE": INSURANCE}
    assert fc.clear_phone(patient) == PHONE

    # The same ID card typed differently, with another campus's MRN: the same person, nothing in clear.
    again = register(session_scope, _person(ident="110101 19700501 123x", mrn="W-9", phone="+86 138-0013-8000"),
                     "test")
    assert again.patient_id == first.patient_id and not again.created and "phone" not in again.changed
    assert _clear_copies(_raw_rows()) == []


def test_same_person_review_and_twins_by_blind_index(database: str) -> None:
    first = register(session_scope, _person(), "test")
    # No shared identifier, same name, birth date and phone: a registrar reviews the pair.
    other = register(session_scope, PersonFacts(identifiers=[IdentIn(system="MRN", value="M-2")], name="张三",
                                                sex="M", birth_date=date(1970, 5, 1), phone="+86 13800138000"),
                     "test")
    assert [pid for pid, _ in other.reviews] == [first.patient_id]
    with Session(get_engine()) as s:
        review = s.exec(select(PatientMatchReview)).one()
        assert "same phone" in review.reasons
        masked = list_reviews(s, "open", 10, 0)
        clear = list_reviews(s, "open", 10, 0, unseal=True)
    shown = {i.system: i.value for p in masked[0].patients for i in p.identifiers}
    assert shown["ID_CARD"] == "1101**********123X"  # as stored, when the role may not see numbers
    assert {i.system: i.value for p in clear[0].patients for i in p.identifiers}["ID_CARD"] == ID_CARD
    # A twin: same name, birth date and phone, another ID card. The numbers differ by index: no review.
    twin = register(session_scope, PersonFacts(
        identifiers=[IdentIn(system="MRN", value="M-3"), IdentIn(system="ID_CARD", value="110101197005010013")],
        name="张三", sex="M", birth_date=date(1970, 5, 1), phone=PHONE), "test")
    assert twin.created and [pid for pid, _ in twin.reviews] == [other.patient_id]  # M-2 has no ID card to differ

    # Merging moves the rows; their sealed numbers survive it (only the owner changed).
    merge(session_scope, first.patient_id, other.patient_id, "user:test", "test")
    with Session(get_engine()) as s:
        moved = s.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id == first.patient_id)).all()
    assert sorted(fc.clear_identifier(r) for r in moved) == sorted(["M-1", ID_CARD, INSURANCE, "M-2"])
    assert _clear_copies(_raw_rows()) == []


def test_reindex_blanks_rows_written_in_clear_before_sealing(database: str) -> None:
    # Rows as an older RadLoop wrote them: the numbers in clear, no sealed copy, no index.
    with get_engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO patient (id, name, sex, birth_date, created_at, phone) "
                             "VALUES ('p-old', '张三', 'M', '1970-05-01', '2026-01-01 00:00:00', :phone)"),
                     {"phone": PHONE})
        for system, value in (("ID_CARD", ID_CARD), ("INSURANCE", INSURANCE), ("MRN", "M-OLD")):
            conn.execute(sa.text("INSERT INTO patient_identifier (patient_id, system, value) "
                                 "VALUES ('p-old', :s, :v)"), {"s": system, "v": value})
    assert _clear_copies(_raw_rows())
    with Session(get_engine()) as s:
        assert fc.reindex(s) >= 4
    assert _clear_copies(_raw_rows()) == []
    with Session(get_engine()) as s:
        rows = s.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id == "p-old")).all()
        patient = s.get(Patient, "p-old")
    assert sorted(fc.clear_identifier(r) for r in rows) == sorted([ID_CARD, INSURANCE, "M-OLD"])
    assert fc.clear_phone(patient) == PHONE
    again = register(session_scope, _person(ident=ID_CARD.lower(), mrn="M-NEW"), "test")
    assert again.patient_id == "p-old" and not again.created
    with Session(get_engine()) as s:  # idempotent: a second run re-seals from the sealed copies
        fc.reindex(s)
    with Session(get_engine()) as s:
        patient = s.get(Patient, "p-old")
        rows = s.exec(select(PatientIdentifier).where(PatientIdentifier.patient_id == "p-old")).all()
    assert fc.clear_phone(patient) == PHONE and ID_CARD in [fc.clear_identifier(r) for r in rows]


def test_sealed_domains_are_the_personal_numbers() -> None:
    from domain.empi import DOMAINS

    assert {code for code in DOMAINS if fc.is_sealed(code)} == {
        "ID_CARD", "PASSPORT", "HK_MACAU_PERMIT", "TAIWAN_PERMIT", "FOREIGN_RESIDENCE_PERMIT", "INSURANCE"}
    assert fc.is_sealed("insurance:bj") and not fc.is_sealed("MRN:WEST") and not fc.is_sealed("HIS_PATIENT_NO")
    assert fc.personal_number_indexes("1101*") == []
    assert fc.identifier_index("ID_CARD", ID_CARD) in fc.personal_number_indexes(ID_CARD.lower())
