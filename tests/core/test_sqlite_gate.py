"""The per-process SQLite write gate (core.sqlite_gate): writers queue, and the gate is given back."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from core.db import make_engine
from core.sqlite_gate import _gate_for, connect_args, queue_writers


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (writer INTEGER, n INTEGER)"))
    return engine


def _impatient_engine(path: Path, gated: bool) -> Engine:
    """SQLite with no busy wait at all: a writer that finds the file locked fails at once."""
    engine = create_engine(f"sqlite:///{path}", connect_args=connect_args(0))
    if gated:
        queue_writers(engine, timeout=30)
    return engine


def _write_concurrently(engine: Engine, threads_: int = 6, first_writer: int = 0) -> list[str]:
    """`threads_` threads writing 10 rows each at once; the errors they met."""
    errors: list[str] = []

    def writer(i: int) -> None:
        for n in range(10):
            try:
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (:i, :n)"), {"i": i, "n": n})
                    time.sleep(0.005)  # hold the write a moment, as real transactions do
            except OperationalError as err:
                errors.append(str(err.orig))

    threads = [threading.Thread(target=writer, args=(first_writer + i,)) for i in range(threads_)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_writers_of_one_process_queue_for_the_file_instead_of_finding_it_locked(tmp_path: Path) -> None:
    _engine(tmp_path)  # creates the table
    # Without the gate, six threads writing at once collide on SQLite's lock (here: fail, no busy wait).
    assert any("locked" in e for e in _write_concurrently(_impatient_engine(tmp_path / "gate.db", gated=False)))
    gated = _impatient_engine(tmp_path / "gate.db", gated=True)
    with gated.begin() as conn:
        conn.execute(text("DELETE FROM t"))
    assert _write_concurrently(gated) == []  # they queued: none found the file locked
    with gated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 60
    assert not _gate_for(str(gated.url.database)).locked()


def test_a_kept_connection_gives_the_gate_back_at_commit_and_rollback(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    gate = _gate_for(str(engine.url.database))
    with engine.connect() as kept:
        kept.execute(text("SELECT count(*) FROM t"))
        assert not gate.locked()  # reads do not take it
        kept.execute(text("INSERT INTO t VALUES (1, 1)"))
        assert gate.locked()
        kept.commit()
        assert not gate.locked()  # the connection is still open, its write is over
        kept.execute(text("UPDATE t SET n = 2"))
        assert gate.locked()
        kept.rollback()
        assert not gate.locked()
        with engine.begin() as other:  # another connection writes at once, no 30 s wait
            other.execute(text("DELETE FROM t"))
    assert not gate.locked()


def test_a_connection_returned_mid_write_gives_the_gate_back(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    gate = _gate_for(str(engine.url.database))
    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (1, 1)"))
    assert gate.locked()
    conn.close()  # no commit: the pool rolls back on return
    assert not gate.locked()
    with engine.connect() as check:
        assert check.execute(text("SELECT count(*) FROM t")).scalar() == 0


def _write_from_a_process(path: str, writer: int) -> list[str]:
    """A separate interpreter (as the API, listener and worker are) writing with two threads."""
    engine = _impatient_engine(Path(path), gated=True)
    errors = _write_concurrently(engine, threads_=2, first_writer=writer * 10)
    engine.dispose()
    return errors


def test_writers_of_different_processes_queue_for_the_file_too(tmp_path: Path) -> None:
    _engine(tmp_path).dispose()
    path = str(tmp_path / "gate.db")
    # SQLite with no busy wait: without a lock shared between the processes some would find it locked.
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        errors = [e for found in pool.map(_write_from_a_process, [path] * 3, range(3)) for e in found]
    assert errors == []
    check = create_engine(f"sqlite:///{path}")
    with check.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 60
    check.dispose()
    assert (tmp_path / "gate.db-writers").exists()
