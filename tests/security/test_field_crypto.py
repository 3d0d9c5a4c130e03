"""Identifier numbers and phones at rest (R10.2.2, R10.3.3): sealed with AES-GCM, matched by blind index.

The database tests run on SQLite and PostgreSQL and go through the EMPI service, the way ADT and
order intake register people."""
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
from domain.tables import Patient, PatientIdentifier
from security import field_crypto as fc
from services.patient_registry import register, update_demographics

ID_CARD = "11010119700501123X"


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
