"""`python -m integrations.dicom.listener` as the launcher runs it: answers, shares its port, stops on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import REPO_ROOT
from tests.support.dicom_tools import DCMTK_ENV, free_port


def _wait_echo(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "listener died"
        res = subprocess.run(["echoscu", "-aec", "RADLOOP", "127.0.0.1", str(port)], env=DCMTK_ENV, capture_output=True)
        if res.returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError("listener never answered C-ECHO")


@pytest.mark.parametrize("processes", [1, 2])
def test_listener_process_serves_and_stops_cleanly(sqlite_database, tmp_path: Path, processes: int) -> None:
    port = free_port()
    env = {**os.environ, "RADLOOP_DICOM_PORT": str(port), "RADLOOP_DICOM_LISTENER_PROCESSES": str(processes)}
    proc = subprocess.Popen([sys.executable, "-m", "integrations.dicom.listener"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, process_group=0)
    try:
        _wait_echo(port, proc)
        for _ in range(4):  # several associations, whichever process takes them
            assert subprocess.run(["echoscu", "-aec", "RADLOOP", "127.0.0.1", str(port)], env=DCMTK_ENV).returncode == 0
        os.killpg(proc.pid, signal.SIGTERM)  # what the launcher does
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
