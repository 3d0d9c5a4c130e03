"""Fixtures for the security tests: a migrated database, a person with both factors, a clock we move."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlmodel import Session

from core.db import get_engine
from domain.enums import Role
from security.clock import ManualClock
from security.policy import SecurityPolicy
from tests.support.people import Person, enrol

@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 8, 0, 0, tzinfo=timezone.utc))


@pytest.fixture
def policy() -> SecurityPolicy:
    return SecurityPolicy()


@pytest.fixture
def db(sqlite_database: str) -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as s:
        yield s


@pytest.fixture
def person(db: Session, clock: ManualClock) -> Person:
    return enrol(db, clock, "li.na", Role.radiologist)
