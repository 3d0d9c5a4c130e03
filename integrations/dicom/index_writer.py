"""Index writes off the C-STORE path, in batches (R4.2.3 throughput).

Indexing one image in its own transaction cost ~4-6 ms, most of a receiver's
per-image budget. The Storage handler now answers as soon as the file is in the
store and hands the index row to this writer, which commits whatever has queued
up (up to BATCH items) in one transaction. `flush()` waits until everything
queued so far is committed: the listener calls it when a peer asks to release
the association, so by the time a sender sees its association closed, its
images are queryable. A failed batch is retried item by item; an item that
still fails is logged (the file is in the store and can be re-indexed).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from integrations.dicom import completeness, index

log = logging.getLogger("radloop.dicom.index")
BATCH = 500
GATHER_SECONDS = 0.25  # collect this long before a commit (a flush cuts it short)
RETRIES = 5


class IndexWriter:
    def __init__(self, on_received: Callable[[list[completeness.Received]], None] | None = None) -> None:
        self._on_received = on_received
        self._lock = threading.Lock()
        self._pending = 0  # submitted, not yet committed: a release with nothing pending need not wait
        self._queue: queue.Queue[index.IndexItem | threading.Event] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="dicom-index-writer", daemon=True)
        self._thread.start()

    def submit(self, item: index.IndexItem) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(item)

    def flush(self, timeout: float = 60) -> bool:
        """Block until every item submitted before this call is committed (at once when none is pending)."""
        with self._lock:
            if self._pending == 0:
                return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            batch: list[index.IndexItem] = []
            waiters: list[threading.Event] = []
            deadline = time.monotonic() + GATHER_SECONDS
            while True:
                if isinstance(entry, threading.Event):
                    waiters.append(entry)
                    break  # someone waits: write now
                batch.append(entry)
                remaining = deadline - time.monotonic()
                if len(batch) >= BATCH or remaining <= 0:
                    break
                try:
                    entry = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            self._write(batch)
            with self._lock:
                self._pending -= len(batch)
            for w in waiters:
                w.set()

    def _write(self, batch: list[index.IndexItem]) -> None:
        if not batch:
            return
        for attempt in range(RETRIES):
            try:
                index.index_batch(batch)
                self._after(batch)
                return
            except OperationalError as exc:  # another listener process holds SQLite's write lock
                log.warning("index batch of %d retried: %s", len(batch), exc)
                time.sleep(0.05 * (attempt + 1))
            except Exception:
                log.exception("index batch of %d failed; writing one by one", len(batch))
                break
        for item in batch:
            try:
                index.index_batch([item])
            except Exception:
                log.exception("could not index %s", item.rel_path)
        self._after(batch)

    def _after(self, batch: list[index.IndexItem]) -> None:
        """Did these images complete what an MPPS announced? (completeness.py)"""
        try:
            marked = completeness.check_studies({item.facts.study_instance_uid for item in batch})
            if marked and self._on_received is not None:
                self._on_received(marked)
        except Exception:
            log.exception("images-received check failed")
