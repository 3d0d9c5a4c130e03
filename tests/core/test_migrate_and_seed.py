"""The migrations build the whole schema on SQLite and PostgreSQL, and demo seeding is safe.

PostgreSQL runs in a throwaway schema of database `test` (search_path set through the URL),
dropped afterwards, so the database is left as it was found.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support.postgres import postgres_schema_url
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, func, select

import domain.schema  # noqa: F401 - fills SQLModel.metadata
from core.config import reset_settings_cache
from core.db import make_engine
from core.migrate import upgrade_head
from core.seed import seed_demo
from domain.enums import Role
from domain.tables import Department, Room, User



@pytest.fixture
def dev_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("RADLOOP_MODE", raising=False)
    reset_settings_cache()
    yield
    reset_settings_cache()


def _postgres_schema_url() -> Iterator[str]:
    with postgres_schema_url("t_migrate") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path, dev_settings) -> Iterator[str]:
    """A fresh database brought to head by the real migrations."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'radloop.db'}"
        upgrade_head(url)
        yield url
    else:
        for url in _postgres_schema_url():
            upgrade_head(url)
            yield url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


def _counts(session: Session) -> dict[str, int]:
    return {t.__name__: session.exec(select(func.count()).select_from(t)).one() for t in (Department, Room, User)}


def test_upgrade_head_creates_every_table(migrated_url: str, engine: sa.Engine) -> None:
    tables = set(sa.inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
    upgrade_head(migrated_url)  # a second run is a no-op, not an error


def test_migrations_match_the_tables(engine: sa.Engine) -> None:
    """domain/tables.py changed without regenerating 0001? The one-liner is in core/migrate.py."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"migrations are behind domain/tables.py (see core/migrate.py): {diff}"


def test_seed_is_idempotent_and_has_one_user_per_role(engine: sa.Engine) -> None:
    with Session(engine) as session:
        seed_demo(session)
        session.commit()
        first = _counts(session)
    with Session(engine) as session:
        seed_demo(session)
        session.commit()
        assert _counts(session) == first
        users = session.exec(select(User)).all()
    assert sorted(u.role for u in users) == sorted(r.value for r in Role)
    assert first["Department"] >= 4 and first["Room"] >= 5
    clinician = next(u for u in users if u.role == Role.clinician)
    assert clinician.department_id == "respiratory"
    for user in users:
        assert user.api_token_sha256 == hashlib.sha256(f"dev-{user.username}".encode()).hexdigest()


def test_seed_refuses_in_production(
    tmp_path, monkeypatch: pytest.MonkeyPatch, dev_settings
) -> None:
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    upgrade_head(url)
    monkeypatch.setenv("RADLOOP_MODE", "production")
    reset_settings_cache()
    eng = make_engine(url)
    try:
        with Session(eng) as session, pytest.raises(RuntimeError, match="production"):
            seed_demo(session)
        with Session(eng) as session:
            assert session.exec(select(func.count()).select_from(User)).one() == 0
    finally:
        eng.dispose()
