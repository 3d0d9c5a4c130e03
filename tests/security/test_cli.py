"""The security administrator's shell commands end in a person who can log in with two factors,
and every step is in the audit trail."""
from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import parse_qs, urlparse

from sqlmodel import Session, col, select

from core.config import REPO_ROOT, get_settings
from core.db import get_engine
from domain.security_tables import AuditRecord
from security import sessions, totp
from security.clock import SystemClock
from security.policy import SecurityPolicy


def _cli(database: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RADLOOP_DATABASE_URL": database, "RADLOOP_DATA_DIR": str(get_settings().data_dir)}
    return subprocess.run([sys.executable, "-m", "security.cli", *args], cwd=REPO_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_create_set_password_enrol_then_log_in(sqlite_database: str) -> None:
    made = _cli(sqlite_database, "user", "create", "--username", "li.na", "--name", "李娜", "--role", "radiologist")
    assert made.returncode == 0, made.stderr
    weak = _cli(sqlite_database, "user", "set-password", "--username", "li.na", "--password-stdin", stdin="weak\n")
    assert weak.returncode == 2 and "at least 12 characters" in weak.stderr
    ok = _cli(sqlite_database, "user", "set-password", "--username", "li.na", "--password-stdin", "--final",
              stdin="Corr3ct-Horse-Battery\n")
    assert ok.returncode == 0, ok.stderr
    enrolled = _cli(sqlite_database, "user", "enrol-totp", "--username", "li.na")
    assert enrolled.returncode == 0, enrolled.stderr
    secret = parse_qs(urlparse(enrolled.stdout.strip()).query)["secret"][0]
    clock = SystemClock()
    with Session(get_engine()) as db:
        done = sessions.login(db, "li.na", "Corr3ct-Horse-Battery", totp.code_at(secret, clock.now()), clock, "",
                              SecurityPolicy(), get_settings().codec_keys)
        assert done.user.role == "radiologist"
        events = [r.event_type for r in db.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all()]
    assert events == ["user_create", "password_set", "totp_enrol"]
    archived = _cli(sqlite_database, "audit", "archive")
    assert archived.returncode == 0 and "archived seq 1..3" in archived.stdout, archived.stdout + archived.stderr
    verified = _cli(sqlite_database, "audit", "verify-archive")
    assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stdout


def test_check_lists_what_production_would_refuse(sqlite_database: str) -> None:
    found = _cli(sqlite_database, "check")
    assert found.returncode == 1 and "demo accounts present" in found.stdout
