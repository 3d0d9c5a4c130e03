"""Archived audit segments (R10.5 backup, retention): they chain to each other and verify without the
database; a changed, missing or moved archived record is named."""
from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from core.config import get_settings
from core.db import get_engine
from security.audit import AuditEvent, AuditTrail
from security.audit_archive import archive, segments, verify_archive
from security.clock import SystemClock


def _event(i: int) -> AuditEvent:
    return AuditEvent(username="auditor", role="auditor", event_type="audit_log_used", event_id="110101",
                      action="R", object_id=f"q{i}", outcome="success")


@pytest.fixture
def trail(sqlite_database: str, tmp_path: Path) -> AuditTrail:
    return AuditTrail(get_engine, tmp_path / "spool", get_settings().audit_checkpoint_keys)


def _archive(directory: Path):
    now = SystemClock().now() + timedelta(seconds=1)
    with Session(get_engine()) as s:
        return archive(s, directory, now, now)


def _rewrite(path: Path, edit) -> None:
    lines = [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]
    lines = edit(lines)
    path.write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode(), mtime=0))


def test_segments_chain_and_verify(trail, tmp_path: Path) -> None:
    for i in range(6):
        trail.record(_event(i))
    first = _archive(tmp_path / "arc")
    assert (first.first_seq, first.last_seq) == (1, 6)
    assert _archive(tmp_path / "arc") is None  # nothing new
    for i in range(6, 9):
        trail.record(_event(i))
    second = _archive(tmp_path / "arc")
    assert (second.first_seq, second.first_prev_hash) == (7, first.last_hash)
    result = verify_archive(tmp_path / "arc")
    assert result.ok and result.checked == 9


@pytest.mark.parametrize(("edit", "seq", "problem"), [
    (lambda rows: [{**r, "username": "x"} if r["seq"] == 3 else r for r in rows], 3, "altered"),
    (lambda rows: [r for r in rows if r["seq"] != 4], 4, "deleted"),
    (lambda rows: rows[:2] + [rows[3], rows[2]] + rows[4:], 3, "reordered"),
])
def test_a_changed_archive_names_the_record(trail, tmp_path: Path, edit, seq: int, problem: str) -> None:
    for i in range(6):
        trail.record(_event(i))
    _archive(tmp_path / "arc")
    _rewrite(tmp_path / "arc" / segments(tmp_path / "arc")[0].file, edit)
    result = verify_archive(tmp_path / "arc")
    assert (result.ok, result.first_bad_seq, result.problem) == (False, seq, problem)
