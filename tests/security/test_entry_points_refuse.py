"""Every process of the center, not only the API, refuses a production start with demo accounts or
development keys (R10.2.3): the worker and the DICOM and HL7 listeners exit before serving anything."""
from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from core.config import REPO_ROOT
from core.db import get_engine
from domain.tables import User

ENTRY_POINTS = {
    "worker": [sys.executable, "worker.py"],
    "hl7 listener": [sys.executable, "-m", "integrations.hl7.listener"],
    "dicom listener": [sys.executable, "-m", "integrations.dicom.listener"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(url: str, data_dir: Path, real_keys: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADLOOP_")}
    env.update(RADLOOP_MODE="production", RADLOOP_DATABASE_URL=url, RADLOOP_DATA_DIR=str(data_dir),
               RADLOOP_TEMPORAL_ADDRESS=f"127.0.0.1:{_free_port()}", RADLOOP_HL7_PORT=str(_free_port()),
               RADLOOP_DICOM_PORT=str(_free_port()), PYTHONPATH=str(REPO_ROOT))
    if real_keys:
        key = lambda: base64.b64encode(os.urandom(32)).decode()  # noqa: E731
        env.update(RADLOOP_CODEC_KEYS=f"k1:{key()}", RADLOOP_AUDIT_CHECKPOINT_KEYS=f"c1:{key()}",
                   RADLOOP_FIELD_KEYS=f"f1:{key()}", RADLOOP_BLIND_INDEX_KEY=key(), RADLOOP_SIGNATURE_KEYS=f"s1:{key()}")
    return env


@pytest.mark.parametrize("component", list(ENTRY_POINTS))
def test_refuses_demo_accounts_and_dev_keys(component: str, sqlite_database: str, tmp_path: Path) -> None:
    done = subprocess.run(ENTRY_POINTS[component], cwd=REPO_ROOT, env=_env(sqlite_database, tmp_path, False),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "refusing to start in production" in done.stderr
    assert "demo accounts present" in done.stderr and "RADLOOP_FIELD_KEYS" in done.stderr


def test_a_clean_production_listener_serves(sqlite_database: str, tmp_path: Path) -> None:
    with Session(get_engine()) as s:
        for user in s.exec(select(User)).all():
            user.active = False
            s.add(user)
        s.commit()
    env = _env(sqlite_database, tmp_path, True)
    env["RADLOOP_HL7_PORT"] = str(port := _free_port())
    proc = subprocess.Popen(ENTRY_POINTS["hl7 listener"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the HL7 listener never listened") from None
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
