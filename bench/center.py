"""A private embedded RadLoop center for one benchmark run.

Like `make run`, but everything is the benchmark's own so it can run next to
`make run` and `make test`: a temp data directory (SQLite application DB and the
dev server's SQLite file), a dev server on a free port without UI, one
in-process RadLoop worker (`worker.build_worker`) on a random task queue. The
environment variables it sets are restored on exit, so benchmarks can run one
after another in the same process.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

VENV_BIN = Path(sys.executable).parent


class ActivityFailures(logging.Filter):
    """Count failed activity attempts (Temporal retries them) instead of printing each traceback.

    A retried attempt is a real cost (the retry policy waits a second before the next
    one), so the benchmarks report how many there were and of what kind.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Completing activity as failed"):
            return True
        info = getattr(record, "temporal_activity", None) or {}
        err = record.exc_info[1] if record.exc_info else None
        self.counts[f"{info.get('activity_type', '?')} ({type(err).__name__})"] += 1
        return False

    def note(self) -> str:
        if not self.counts:
            return "failed activity attempts (retried by Temporal): none"
        kinds = ", ".join(f"{n} x {k}" for k, n in self.counts.most_common())
        return f"failed activity attempts (retried by Temporal): {sum(self.counts.values())}: {kinds}"


@dataclass
class Center:
    client: Client  # RadLoop's data converter (pydantic + encryption codec)
    env: WorkflowEnvironment
    task_queue: str
    data_dir: Path
    activity_failures: ActivityFailures = field(default_factory=ActivityFailures)

    @property
    def target(self) -> str:
        return self.client.service_client.config.target_host


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, then restore the previous values."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _reset_caches() -> None:
    from core.config import reset_settings_cache
    from core.db import reset_engine_cache

    reset_settings_cache()
    reset_engine_cache()


def _prepare_database(url: str) -> None:
    """Migrate to head and seed the demo users, rooms and departments (as `make run` does)."""
    from core.db import get_engine
    from core.migrate import upgrade_head
    from core.seed import seed_demo

    upgrade_head(url)
    with Session(get_engine()) as s:
        seed_demo(s)
        s.commit()


def temporal_binary() -> str:
    path = VENV_BIN / "temporal"
    if not path.exists():
        raise RuntimeError(f"{path} not found: run `make setup`")
    return str(path)


@contextlib.asynccontextmanager
async def embedded_center(settings_env: dict[str, str] | None = None, log_level: str = "error") -> AsyncIterator[Center]:
    """Yield a running center; `settings_env` adds RADLOOP_* settings (e.g. the correction window)."""
    from core.db import get_engine
    from core.temporal import data_converter, dev_server_search_attribute_args
    from worker import build_worker

    with tempfile.TemporaryDirectory(prefix="radloop-bench-") as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'radloop.db'}"
        task_queue = f"bench-{uuid.uuid4().hex[:8]}"
        env_vars = {
            "RADLOOP_MODE": "development",
            "RADLOOP_DATA_DIR": str(data_dir),
            "RADLOOP_DATABASE_URL": url,
            "RADLOOP_TEMPORAL_TASK_QUEUE": task_queue,
            **(settings_env or {}),
        }
        with patched_env(env_vars):
            _reset_caches()
            try:
                _prepare_database(url)
                env = await WorkflowEnvironment.start_local(
                    dev_server_existing_path=temporal_binary(),
                    dev_server_database_filename=str(data_dir / "temporal.db"),
                    dev_server_extra_args=dev_server_search_attribute_args(),
                    dev_server_log_level=log_level,
                    data_converter=data_converter(),
                    ui=False,
                )
                center = Center(client=env.client, env=env, task_queue=task_queue, data_dir=data_dir)
                activity_log = logging.getLogger("temporalio.activity")
                activity_log.addFilter(center.activity_failures)
                try:
                    async with build_worker(env.client, task_queue=task_queue):
                        yield center
                finally:
                    activity_log.removeFilter(center.activity_failures)
                    await env.shutdown()
            finally:
                get_engine().dispose()
                _reset_caches()
