"""One SQLite writer at a time per database file, queued, instead of polling for the file's write lock.

Why: SQLite lets one connection write at a time; a connection that finds the lock taken sleeps
in its busy handler (1, 2, 5 ... then 100 ms at a time) and tries again, with no queue. Under a
burst (the HL7 listener's and the API's threads, the worker's activities) a writer that has
waited a while sleeps 100 ms per try while others keep winning the lock: seen as 1-2 s stalls in
`make bench-hl7`. So writers queue instead: a connection takes the gate before its first write
of a transaction and gives it back once its commit or rollback is done (GatedConnection:
sqlite3's own connection class with that one addition), so the next writer starts the moment
the lock is free. The gate is two locks: the process's threads queue on a threading lock, and
the one thread holding it then takes an flock on `<database>-writers` next to the file, which
the writers of the other processes (API, listener, worker, DICOM services) take too. The kernel
frees that lock when a process dies. PostgreSQL has row locks and needs none of this.

A writer that cannot get the gate within the busy timeout writes anyway (SQLite's own timeout
then decides), so the gate adds no failure of its own: a thread that opens a second writing
connection while its first still writes blocks exactly as long as SQLite alone would.
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_FILE_POLL_SECONDS = (0.0002, 0.0005, 0.001, 0.002)  # then 2 ms: one waiter per process polls


class WriteGate:
    """This process's writers queue on `local`; its one holder then takes the file's lock."""

    def __init__(self, database: str) -> None:
        self.local = threading.Lock()
        self.lock_path = f"{database}-writers" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._fd_pid = 0

    def locked(self) -> bool:
        return self.local.locked()

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self.local.acquire(timeout=timeout):
            return False
        if self._lock_file(deadline):
            return True
        self.local.release()
        return False

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self.local.release()

    def _lock_file(self, deadline: float) -> bool:
        """The file lock, polled (flock has no timeout); True also when there is no file to lock."""
        fd = self._file()
        if fd is None:
            return True
        attempt = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_FILE_POLL_SECONDS[min(attempt, len(_FILE_POLL_SECONDS) - 1)])
                attempt += 1

    def _file(self) -> int | None:
        if self.lock_path is None:
            return None
        if self._fd is None or self._fd_pid != os.getpid():  # a forked child opens its own
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only directory: the process queue alone, SQLite arbitrates between processes
                self.lock_path = None
                return None
            self._fd_pid = os.getpid()
        return self._fd


_gates: dict[str, WriteGate] = {}
_gates_lock = threading.Lock()


def _gate_for(database: str) -> WriteGate:
    with _gates_lock:
        if database not in _gates:
            _gates[database] = WriteGate(database)
        return _gates[database]


def _is_write(statement: str) -> bool:
    return statement.lstrip()[:7].upper().startswith(_WRITES)


class GatedConnection(sqlite3.Connection):
    """sqlite3's connection, giving its process's write gate back once its commit or rollback is done."""

    gate: WriteGate | None = None
    holds_gate = False

    def take_gate(self, timeout: float) -> None:
        if self.gate is not None and not self.holds_gate:
            self.holds_gate = self.gate.acquire(timeout=timeout)  # False: write anyway, SQLite decides

    def _give_back(self) -> None:
        if self.holds_gate and self.gate is not None:
            self.holds_gate = False
            self.gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def connect_args(busy_seconds: float) -> dict[str, Any]:
    """sqlite3.connect arguments for an engine that `queue_writers` then gates."""
    return {"check_same_thread": False, "timeout": busy_seconds, "factory": GatedConnection}


def queue_writers(engine: Engine, timeout: float) -> None:
    """Make `engine`'s connections (made with `connect_args`) queue for their database file's gate."""
    gate = _gate_for(str(engine.url.database))

    @event.listens_for(engine, "connect")
    def _give_gate(dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, GatedConnection):
            dbapi_conn.gate = gate

    @event.listens_for(engine, "before_cursor_execute")
    def _take_gate(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, GatedConnection) and not dbapi_conn.holds_gate and _is_write(statement):
            dbapi_conn.take_gate(timeout)
