"""Shared fixtures: a real database (SQLite and PostgreSQL), real Temporal servers.

- `database`: a migrated, seeded database; parametrised over SQLite and PostgreSQL
  (a throwaway schema in db `test`), and wired into the app's settings so
  activities running in-process write to it.
- `ts_env`: a fresh time-skipping test server per test (timers in milliseconds;
  one test's skipped month never leaks into the next).
- `dev_env`: the Temporal CLI dev server, as `make run` uses it.
Every server uses free ports; nothing binds the fixed default ports.
"""
from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from core.config import reset_settings_cache
from tests.support.postgres import postgres_schema_url
from core.db import get_engine, reset_engine_cache
from core.migrate import upgrade_head
from core.seed import seed_demo
from domain.tables import AccessionCounter
from core.temporal import SEARCH_ATTRIBUTES, data_converter, dev_server_search_attribute_args

VENV_BIN = Path(sys.executable).parent


def _binary(name: str) -> str:
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make setup`")
    return found


def _pg_schema() -> Iterator[str]:
    with postgres_schema_url("t") as url:
        try:
            yield url
        finally:
            reset_engine_cache()


_SQLITE_TEMPLATES: dict[frozenset[tuple[str, str]], Path] = {}
_PER_TEST_ENV = {"RADLOOP_DATABASE_URL", "RADLOOP_DATA_DIR", "RADLOOP_MODE"}


def _sqlite_template(factory: pytest.TempPathFactory) -> Path:
    """A migrated, demo-seeded SQLite file made once per session for the settings in force (the
    seed seals numbers with the configured keys); each test gets a copy instead of ~1 s of migrations."""
    key = frozenset((k, v) for k, v in os.environ.items() if k.startswith("RADLOOP_") and k not in _PER_TEST_ENV)
    if key not in _SQLITE_TEMPLATES:
        path = factory.mktemp("sqlite-template") / "radloop.db"
        with pytest.MonkeyPatch.context() as mp:
            _point_at(mp, f"sqlite:///{path}", path.parent)
            upgrade_head(f"sqlite:///{path}")
            with Session(get_engine()) as s:
                seed_demo(s)
                s.commit()
            get_engine().dispose()
        reset_engine_cache()
        reset_settings_cache()
        _SQLITE_TEMPLATES[key] = path
    return _SQLITE_TEMPLATES[key]


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str, data_dir: Path) -> None:
    monkeypatch.setenv("RADLOOP_DATABASE_URL", url)
    monkeypatch.setenv("RADLOOP_DATA_DIR", str(data_dir))
    monkeypatch.delenv("RADLOOP_MODE", raising=False)
    reset_settings_cache()
    reset_engine_cache()


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str, data_dir: Path, template: Path | None = None) -> None:
    if template is not None:  # SQLite: a copy of the session's migrated, seeded file
        shutil.copyfile(template, url.removeprefix("sqlite:///"))
        _point_at(monkeypatch, url, data_dir)
    else:
        _point_at(monkeypatch, url, data_dir)
        upgrade_head(url)
        with Session(get_engine()) as s:
            seed_demo(s)
            s.commit()
    with Session(get_engine()) as s:
        # Start today's accession counter at a random point: tests sharing one Temporal
        # server must not reuse workflow IDs (accession-derived) from an earlier test.
        from datetime import datetime, timezone
        import random
        s.add(AccessionCounter(day=datetime.now(timezone.utc).strftime("%Y%m%d"), last=random.randrange(10_000, 90_000)))
        s.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, demo-seeded database that the app's settings point at."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'radloop.db'}"
        _use_database(monkeypatch, url, tmp_path, _sqlite_template(tmp_path_factory))
        yield url
    else:
        for url in _pg_schema():
            _use_database(monkeypatch, url, tmp_path)
            yield url
    get_engine().dispose()
    reset_engine_cache()
    reset_settings_cache()


@pytest.fixture
def sqlite_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same on SQLite only, for tests whose subject is not the database."""
    url = f"sqlite:///{tmp_path / 'radloop.db'}"
    _use_database(monkeypatch, url, tmp_path, _sqlite_template(tmp_path_factory))
    yield url
    get_engine().dispose()
    reset_engine_cache()
    reset_settings_cache()


@pytest.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"), data_converter=data_converter()
    )
    kinds = {"Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD, "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL}
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={name: kinds[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        data_converter=data_converter(),
        dev_server_extra_args=dev_server_search_attribute_args() + ["--log-level", "error"],
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def notify_sink(monkeypatch: pytest.MonkeyPatch):
    """Every notification goes to a local webhook receiver (apprise `json://`)."""
    from tests.support.notify_sink import NotifySink

    with NotifySink() as sink:
        monkeypatch.setenv("RADLOOP_NOTIFY_DEFAULT_URL", sink.url)
        reset_settings_cache()
        yield sink
    reset_settings_cache()
