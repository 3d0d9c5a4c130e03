"""Shared pieces of the DICOM benchmarks: a scratch center, the listener as a child process, DCMTK runs."""
from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.config import REPO_ROOT

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def center_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """Environment for a scratch center: its own SQLite DB, data dir and DICOM port."""
    return {
        **os.environ,
        "RADLOOP_DATA_DIR": str(data_dir),
        "RADLOOP_DATABASE_URL": f"sqlite:///{data_dir / 'radloop.db'}",
        "RADLOOP_DICOM_PORT": str(port),
        "RADLOOP_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # nothing there: benches need no loop
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def prepare_database(env: dict[str, str]) -> None:
    """Migrate and seed the scratch database (in a child, so this process's settings stay untouched)."""
    code = ("from core.migrate import upgrade_head; from core.db import session_scope; "
            "from core.seed import seed_demo; upgrade_head()\nwith session_scope() as s: seed_demo(s)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True)


@contextmanager
def listener(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "integrations.dicom.listener"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_port(port)
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


@contextmanager
def dcmtk_server(argv: list[str], port: int, cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, cwd=cwd, env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (an observed value)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of the processes' peak resident sizes (VmHWM), in MB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def children_of(pid: int) -> list[int]:
    try:
        out = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(p) for p in out]
