"""Which consent is in force (R10.3.2): newest decision given by then, not withdrawn, not past its validity."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import Session

from core.db import get_engine
from domain.tables import Patient, User
from services.consent import ConsentIn, has_consent, in_force, record, withdraw
from services.errors import Conflict

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def db(database) -> Session:
    with Session(get_engine(), expire_on_commit=False) as s:
        s.add(Patient(id="p-cons", name="王五", sex="M", birth_date=date(1960, 3, 3)))
        s.commit()
        yield s


def _in(given: datetime, decision: str = "granted", **kw) -> ConsentIn:
    return ConsentIn(scope="research", purpose="research on de-identified data", decision=decision,
                     method="electronic", given_at=given, **kw)


def test_newest_decision_counts_and_withdrawal_ends_it(db: Session) -> None:
    registrar = db.get(User, "u-registrar")
    assert not has_consent(db, "p-cons", "research", T0)  # no record, no consent
    first = record(db, "p-cons", _in(T0), registrar, T0)
    assert has_consent(db, "p-cons", "research", T0 + timedelta(minutes=1))
    assert not has_consent(db, "p-cons", "research", T0 - timedelta(minutes=1))  # not before it was given
    assert not has_consent(db, "p-cons", "teaching", T0 + timedelta(minutes=1))  # per scope
    record(db, "p-cons", _in(T0 + timedelta(days=1), decision="refused"), registrar, T0 + timedelta(days=1))
    assert has_consent(db, "p-cons", "research", T0 + timedelta(hours=1))
    assert not has_consent(db, "p-cons", "research", T0 + timedelta(days=2))  # the refusal is newer
    limited = record(db, "p-cons", _in(T0 + timedelta(days=3), valid_until=T0 + timedelta(days=10)), registrar,
                     T0 + timedelta(days=3))
    assert has_consent(db, "p-cons", "research", T0 + timedelta(days=4))
    assert not has_consent(db, "p-cons", "research", T0 + timedelta(days=11))  # expired: the refusal is in force
    withdraw(db, limited.id, "no longer agrees", registrar, T0 + timedelta(days=5))
    assert in_force(db, "p-cons", "research", T0 + timedelta(days=6)).decision == "refused"
    with pytest.raises(Conflict):
        withdraw(db, limited.id, "twice", registrar, T0 + timedelta(days=6))
    assert first.state == "active"
