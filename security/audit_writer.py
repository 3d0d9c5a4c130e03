"""Audit records written on one background thread, so no DICOM response or HL7 ACK waits on the store.

`AuditTrail.record` never loses an event (it spools to disk while the database is
down); this writer only moves the write off the protocol threads. `flush` lets
tests and shutdown wait until everything queued is written.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from security.audit import AuditEvent

log = logging.getLogger("radloop.audit.writer")


class BackgroundAuditWriter:
    def __init__(self, record: Callable[[AuditEvent], Any], name: str) -> None:
        self._record = record
        self._queue: queue.Queue[AuditEvent] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, event: AuditEvent) -> None:
        self._queue.put(event)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                self._record(event)  # AuditTrail.record never raises; it spools instead
            except Exception:  # noqa: BLE001 - a bug here must not stop the writer
                log.exception("audit record %s not written", event.event_uuid)
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written; False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)
