"""The audit store: append-only in the database itself, and nothing lost when it is down (R10.5)."""
from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from core.config import get_settings
from core.db import get_engine, make_engine
from domain.security_tables import AuditRecord
from security.audit import AuditEvent, AuditTrail, verify_chain
from security.audit_guard import grant_app_role


def _event(i: int) -> AuditEvent:
    return AuditEvent(username="clinician", role="clinician", event_type="patient_read", event_id="110110",
                      action="R", object_type="accession", object_id=f"A{i}", outcome="success")


def _rows() -> list[AuditRecord]:
    with Session(get_engine()) as s:
        return list(s.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all())


def _verify():
    with Session(get_engine()) as s:
        return verify_chain(s, get_settings().audit_checkpoint_keys)


@pytest.fixture
def trail(database: str, tmp_path) -> AuditTrail:
    return AuditTrail(get_engine, tmp_path / "spool", get_settings().audit_checkpoint_keys)


@pytest.mark.parametrize("statement", ["UPDATE audit_record SET outcome = 'failure'", "DELETE FROM audit_record"])
def test_the_database_refuses_to_change_audit_rows(trail, statement) -> None:
    """Through the real migrations, on both databases: the owner's connection is refused too."""
    trail.record(_event(1))
    with pytest.raises(DBAPIError, match="append-only"):
        with get_engine().begin() as conn:
            conn.execute(sa.text(statement))
    assert [r.outcome for r in _rows()] == ["success"]


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_postgres_refuses_truncate(trail) -> None:
    trail.record(_event(1))
    with pytest.raises(DBAPIError, match="append-only"):
        with get_engine().begin() as conn:
            conn.execute(sa.text("TRUNCATE audit_record"))
    assert len(_rows()) == 1


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_postgres_app_role_may_only_insert_and_read_audit_rows(trail, database) -> None:
    """Second layer: with the triggers off, the app's own role still cannot UPDATE or DELETE."""
    trail.record(_event(1))
    role = f"radloop_app_{uuid.uuid4().hex[:8]}"
    engine = get_engine()
    with engine.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        conn.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
        grant_app_role(conn, role, schema)
        conn.execute(sa.text("ALTER TABLE audit_record DISABLE TRIGGER USER"))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'SET ROLE "{role}"'))
            assert conn.execute(sa.text("SELECT count(*) FROM audit_record")).scalar_one() == 1
            conn.execute(sa.text("UPDATE exam_order SET status = status WHERE false"))  # other tables: writable
            for statement in ("UPDATE audit_record SET outcome = 'failure'", "DELETE FROM audit_record"):
                with pytest.raises(DBAPIError, match="permission denied"):
                    with conn.begin_nested():
                        conn.execute(sa.text(statement))
            conn.rollback()
        # and the app role's inserts still chain: write through an engine that runs as that role
        as_app = make_engine(database)

        @sa.event.listens_for(as_app, "connect")
        def _as_role(dbapi_conn, _record) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute(f'SET ROLE "{role}"')

        app_trail = AuditTrail(lambda: as_app, trail.spool_dir, get_settings().audit_checkpoint_keys)
        assert app_trail.record(_event(2)) == "stored"
        as_app.dispose()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit_record ENABLE TRIGGER USER"))
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
    assert [r.object_id for r in _rows()] == ["A1", "A2"] and _verify().ok


def test_store_down_spools_then_replays_in_order_nothing_lost(trail, tmp_path) -> None:
    trail.record(_event(0))
    down = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'audit.db'}")  # cannot even be opened
    outage = AuditTrail(lambda: down, trail.spool_dir, get_settings().audit_checkpoint_keys)
    assert [outage.record(_event(i)) for i in range(1, 6)] == ["spooled"] * 5
    assert [e.object_id for e in trail.spooled()] == [f"A{i}" for i in range(1, 6)]
    assert len(_rows()) == 1
    # the store is back: the next event is stored after the spooled ones, in the order they happened
    assert trail.record(_event(6)) == "stored"
    assert [r.object_id for r in _rows()] == [f"A{i}" for i in range(7)]
    assert trail.spooled() == [] and _verify().ok


def test_replay_is_idempotent(trail) -> None:
    """A crash between storing a spooled event and clearing the spool stores nothing twice."""
    event = _event(1)
    trail.record(event)
    trail.spool_dir.mkdir(parents=True, exist_ok=True)
    trail.spool_path.write_text(event.model_dump_json() + "\n" + _event(2).model_dump_json() + "\n", encoding="utf-8")
    assert trail.replay_spool() == 2
    assert [r.object_id for r in _rows()] == ["A1", "A2"] and trail.spooled() == []


def test_concurrent_writers_keep_one_unbroken_chain(trail, tmp_path) -> None:
    """Separate trails (as API, worker and CLI processes would be) race for the next seq."""
    trails = [AuditTrail(get_engine, tmp_path / f"spool{i}", get_settings().audit_checkpoint_keys, 7) for i in range(4)]
    errors: list[BaseException] = []

    def _run(t: AuditTrail, base: int) -> None:
        try:
            for i in range(10):
                assert t.record(_event(base + i)) == "stored"
        except BaseException as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=_run, args=(t, 100 * n)) for n, t in enumerate(trails)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    rows = _rows()
    assert [r.seq for r in rows] == list(range(1, 41))
    result = _verify()
    assert result.ok and result.checkpoints == 5
