"""Care policies as versioned data (R6.2.2) on SQLite and PostgreSQL: the seeded version 1 is the
built-in behaviour, a publish changes who is called first from then on, every ticket names the
version that tiered it, and an edit based on an older version is refused."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from core.db import get_engine
from domain.care_policy import SEED_RULES, CarePolicyRules
from domain.queue_tables import QueueTicket
from domain.queueing.policy import DEFAULT_POLICY, PatientTraits
from services import care_policy, queueing
from services.care_policy import PolicyPublishIn
from services.errors import Conflict

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _elderly_from(age: int) -> CarePolicyRules:
    rules = tuple(r.model_copy(update={"min_age": age, "name": f"elderly ({age}+)"}) if r.min_age is not None else r
                  for r in SEED_RULES.rules)
    return CarePolicyRules(rules=rules, default_rank=SEED_RULES.default_rank)


@pytest.fixture
def ct_queue(database):
    with Session(get_engine()) as s:
        queueing.define_queue(s, "q-ct", "CT", ["CT1"])
        s.commit()


def test_the_seed_is_version_1_and_behaves_like_the_built_in_policy(database) -> None:
    with Session(get_engine()) as s:
        [row] = care_policy.versions(s)
        policy = care_policy.current_policy(s)
    assert (row.version, row.published_by, row.based_on) == (1, "system", None)
    assert policy.version == 1 and policy.rules == DEFAULT_POLICY.rules
    for traits in (PatientTraits(priority="stat", age=30), PatientTraits(age=85), PatientTraits(age=72),
                   PatientTraits(age=40, flags=frozenset({"disabled"})), PatientTraits(age=3)):
        assert policy.tier(traits) == DEFAULT_POLICY.tier(traits)


def test_publishing_elderly_from_70_calls_a_72_year_old_first_from_then_on(ct_queue) -> None:
    queueing.join("A1", "王一", "q-ct", PatientTraits(age=40), "u-registrar")
    before = queueing.join("A2", "李二", "q-ct", PatientTraits(age=72), "u-registrar")
    assert (before.tier, before.tier_reason) == (9, "arrival order")  # 72 is not elderly under version 1

    with Session(get_engine()) as s:
        row = care_policy.publish(s, PolicyPublishIn(based_on=1, note="elderly from 70", policy=_elderly_from(70)),
                                  "u-manager", NOW)
    assert (row.version, row.based_on, row.published_by) == (2, 1, "u-manager")

    after = queueing.join("A3", "赵三", "q-ct", PatientTraits(age=72), "u-registrar")
    assert (after.tier, after.tier_reason) == (3, "elderly (70+)")
    with Session(get_engine()) as s:
        versions = {t.accession_number: t.policy_version for t in s.exec(select(QueueTicket)).all()}
    assert versions == {"A1": 1, "A2": 1, "A3": 2}  # issued tickets keep the tier their version gave

    called = [queueing.call_next("CT1", "u-technologist").accession_number for _ in range(3)]
    assert called == ["A3", "A1", "A2"]


def test_an_edit_based_on_an_older_version_is_refused(database) -> None:
    with Session(get_engine()) as s:
        care_policy.publish(s, PolicyPublishIn(based_on=1, note="70", policy=_elderly_from(70)), "u-manager", NOW)
    with Session(get_engine()) as s, pytest.raises(Conflict, match="newest is version 2"):
        care_policy.publish(s, PolicyPublishIn(based_on=1, note="65", policy=_elderly_from(65)), "u-qc_officer", NOW)
    with Session(get_engine()) as s:
        assert [r.version for r in care_policy.versions(s)] == [2, 1]
        assert care_policy.current_policy(s).tier(PatientTraits(age=66)) == (SEED_RULES.default_rank, "arrival order")


def test_rules_that_would_demote_emergencies_do_not_validate() -> None:
    demoted = tuple(r.model_copy(update={"rank": 5}) if r.name == "emergency first" else r for r in SEED_RULES.rules)
    with pytest.raises(ValidationError, match="emergency"):
        CarePolicyRules(rules=demoted, default_rank=9)
    with pytest.raises(ValidationError, match="unique"):
        CarePolicyRules(rules=(SEED_RULES.rules[0], SEED_RULES.rules[0]))
