"""Fixtures for the HTTP edge: a throw-away database, one user per role, the app on ASGI.

Every outside service the settings name (Temporal, DICOM, HL7) points at a port
that nothing listens on, unless a test starts the real thing on its own port.
"""
from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import postgres_schema_url
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

import domain.schema  # noqa: F401 - every table on SQLModel.metadata
from api.deps import token_sha256
from api.main import create_app
from core import config, db
from core.seed import DEMO_PROCEDURE_ALIASES
from domain.procedure_tables import Procedure
from services.procedure_catalogue import seed_catalogue
from domain.enums import Role, TaskState
from domain.tables import ExamOrder, HumanTask, Patient, User
from domain.task_forms import TASK_SPECS


def free_port() -> int:
    """A port nothing listens on right now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _auth(who: Role | str) -> dict[str, str]:
    """Headers of the seeded user `who` (username = role name, token `dev-<username>`)."""
    return {"Authorization": f"Bearer dev-{who.value if isinstance(who, Role) else who}"}


@pytest.fixture
def auth():
    return _auth




@contextlib.contextmanager
def _database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a throw-away PostgreSQL schema (skipped off CI when none runs)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'radloop.db'}"
        return
    with postgres_schema_url("api") as url:
        yield url


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite unless a test module parametrises it (indirectly) with "postgresql" too."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def settings(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[config.Settings]:
    with _database_url(backend, tmp_path) as url:
        monkeypatch.setenv("RADLOOP_MODE", "development")
        monkeypatch.setenv("RADLOOP_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("RADLOOP_DATABASE_URL", url)
        monkeypatch.setenv("RADLOOP_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
        monkeypatch.setenv("RADLOOP_TEMPORAL_TASK_QUEUE", f"api-test-{uuid.uuid4().hex[:8]}")
        monkeypatch.setenv("RADLOOP_DICOM_PORT", str(free_port()))
        monkeypatch.setenv("RADLOOP_HL7_PORT", str(free_port()))
        monkeypatch.setenv("RADLOOP_DEV_TEMPORAL_UI_PORT", str(free_port()))
        config.reset_settings_cache()
        db.reset_engine_cache()
        SQLModel.metadata.create_all(db.get_engine())
        try:
            yield config.get_settings()
        finally:
            db.get_engine().dispose()
            config.reset_settings_cache()
            db.reset_engine_cache()


@pytest.fixture
def session(settings: config.Settings) -> Iterator[Session]:
    with Session(db.get_engine(), expire_on_commit=False) as s:
        yield s


@pytest.fixture
def users(session: Session) -> dict[str, User]:
    """One active user per role, plus `retired` (inactive, a registrar)."""
    rows = {
        r.value: User(
            id=f"u-{r.value}", username=r.value, display_name=f"{r.value.replace('_', ' ').title()} Test",
            role=r.value, api_token_sha256=token_sha256(f"dev-{r.value}"),
            department_id="ED" if r is Role.clinician else None,  # the department `make_order` orders from
        )
        for r in Role
    }
    rows["retired"] = User(
        id="u-retired", username="retired", display_name="Retired", role=Role.registrar.value,
        api_token_sha256=token_sha256("dev-retired"), active=False,
    )
    session.add_all(rows.values())
    # The procedure catalogue orders are checked against (reference data plus the demo's short codes).
    seed_catalogue(session)
    session.add_all(Procedure(code=c, name=n, modality=m, body_part=b) for c, n, m, b in DEMO_PROCEDURE_ALIASES)
    session.commit()
    return rows


@pytest.fixture
async def api(users: dict[str, User]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radloop.test") as client:
        yield client


def _make_order(session: Session, accession: str = "A2026010100001", **overrides) -> ExamOrder:
    """An order row as intake would write it (no loop behind it)."""
    patient = session.get(Patient, "p-1") or Patient(id="p-1", name="Zhang San", sex="M", birth_date=date(1970, 5, 1))
    session.add(patient)
    session.flush()  # the order's foreign key needs the patient row first
    fields = dict(
        accession_number=accession, workflow_id=f"exam-loop-{accession}", placer_system="HIS",
        placer_order_number=f"PO-{accession}", patient_id=patient.id, procedure_code="CT-CHEST",
        procedure_name="CT chest", modality="CT", body_part="CHEST", priority="routine",
        ordering_clinician_id="c-1", ordering_clinician_name="Dr Li", ordering_department="ED",
    )
    order = ExamOrder(**{**fields, **overrides})
    session.add(order)
    session.commit()
    return order


def _make_task(
    session: Session,
    task_type: str = "check_in",
    n: int = 1,
    accession: str = "A2026010100001",
    **overrides,
) -> HumanTask:
    """A human_task row as the loop's activity would write it."""
    spec = TASK_SPECS[task_type]  # type: ignore[index]
    wid = f"exam-loop-{accession}"
    fields = dict(
        id=f"{wid}/{task_type}/{n}", workflow_id=wid, accession_number=accession, task_type=task_type,
        role=spec.roles[0].value, roles=f" {' '.join(r.value for r in spec.roles)} ",
        state=TaskState.open.value, priority_rank=3, due_at=datetime.now(timezone.utc) + spec.due,
        form_schema=task_type, title=spec.title, context={"patient_name": "Zhang San"},
    )
    fields.update(overrides)
    task = HumanTask(**fields)
    session.add(task)
    session.commit()
    return task


@pytest.fixture
def make_order(session: Session):
    return lambda accession="A2026010100001", **kw: _make_order(session, accession, **kw)


@pytest.fixture
def make_task(session: Session):
    return lambda task_type="check_in", n=1, **kw: _make_task(session, task_type, n, **kw)


def minutes_from_now(minutes: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


@pytest.fixture
def at():
    return minutes_from_now
