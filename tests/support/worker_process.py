"""Run `worker.py` as a real process against a test Temporal server (to kill it mid-loop)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_worker(env, task_queue: str) -> subprocess.Popen:
    """`env` is a WorkflowEnvironment; the process inherits the test's database settings."""
    child_env = os.environ | {
        "RADLOOP_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "RADLOOP_TEMPORAL_TASK_QUEUE": task_queue,
    }
    return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=child_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
