"""Archived audit segments (R10.5 backup, retention): they chain to each other and verify without the
database; a changed, missing or moved archived record is named. Purge removes only archived records past
retention, from a verified archive, and the database chain still verifies from the archive's hash."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from core.config import REPO_ROOT, Settings, get_settings
from core.db import get_engine
from domain.security_tables import AuditRecord
from security.audit import AuditEvent, AuditTrail, verify_chain
from security.audit_archive import PurgeRefused, archive, archived_hashes, purge, segments, verify_archive
from security.audit_guard import deletes_allowed
from security.clock import ManualClock, SystemClock


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


# ---- purge (R10.5 retention: archived, verified, then removed) ----------------------------------------

NOW = datetime.now(timezone.utc)


@pytest.fixture
def aged(database: str, tmp_path: Path) -> Path:
    """seq 1..4 recorded 400 days ago, 5..6 390 days ago, 7..9 100 days ago; 1..4 archived."""
    clock = ManualClock(NOW - timedelta(days=400))
    trail = AuditTrail(get_engine, tmp_path / "spool", get_settings().audit_checkpoint_keys, checkpoint_every=4,
                       clock=clock)
    for i, days in enumerate([0, 0, 0, 0, 10, 0, 290, 0, 0]):
        clock.advance(timedelta(days=days))
        trail.record(_event(i))
    with Session(get_engine()) as s:
        assert archive(s, tmp_path / "arc", NOW - timedelta(days=395), NOW).last_seq == 4
    return tmp_path / "arc"


def _seqs() -> list[int]:
    with Session(get_engine()) as s:
        return list(s.exec(select(AuditRecord.seq).order_by(col(AuditRecord.seq))).all())


def _purge(directory: Path, days: float) -> int:
    with Session(get_engine()) as s:
        return purge(s, directory, NOW - timedelta(days=days), NOW)


def _verify(directory: Path | None):
    with Session(get_engine()) as s:
        return verify_chain(s, get_settings().audit_checkpoint_keys,
                            archived_hashes(directory) if directory else None)


def _attacker_deletes(seq: int) -> None:
    """Someone with the owner's rights removing a record outside purge."""
    with get_engine().begin() as conn, deletes_allowed(conn, "audit_record"):
        conn.execute(sa.text("DELETE FROM audit_record WHERE seq = :seq"), {"seq": seq})


def test_purge_removes_only_archived_old_records_and_the_chain_still_verifies(aged: Path) -> None:
    assert _purge(aged, 200) == 4  # 5..6 are old enough but not archived yet
    assert _seqs() == [5, 6, 7, 8, 9, 10]
    with Session(get_engine()) as s:
        record = s.get(AuditRecord, 10)
        assert (record.event_type, record.action, record.object_id) == ("audit_purged", "D", "1..4")
        assert record.detail["last_seq"] == 4 and record.detail["count"] == 4
    for directory in (aged, None):  # anchored by the archive, and by the purge record alone (the API)
        result = _verify(directory)
        assert result.ok and result.checked == 6, result
    assert verify_archive(aged).ok
    assert _purge(aged, 200) == 0  # nothing more archived
    with Session(get_engine()) as s:
        assert archive(s, aged, NOW + timedelta(seconds=1), NOW).last_seq == 10
    assert _purge(aged, 200) == 2
    assert _seqs() == [7, 8, 9, 10, 11]
    assert _verify(aged).ok and _verify(None).ok


def test_purge_inside_the_retention_period_is_refused(aged: Path) -> None:
    with pytest.raises(PurgeRefused, match="kept at least 183 days"):
        _purge(aged, 179)
    assert _seqs() == list(range(1, 10))
    with pytest.raises(ValidationError):
        Settings(audit_retention_days=90)


def test_purge_with_a_tampered_segment_is_refused_and_deletes_nothing(aged: Path) -> None:
    _rewrite(aged / segments(aged)[0].file, lambda rows: [{**r, "username": "x"} if r["seq"] == 2 else r for r in rows])
    with pytest.raises(PurgeRefused, match="does not verify"):
        _purge(aged, 200)
    assert _seqs() == list(range(1, 10))
    assert _verify(None).ok


def test_verify_fails_when_the_archive_no_longer_holds_the_purged_end(aged: Path) -> None:
    _purge(aged, 200)
    (aged / segments(aged)[0].file).unlink()
    result = _verify(aged)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 4, "deleted")


@pytest.mark.parametrize("seq", [5, 7])
def test_a_record_deleted_after_a_purge_is_still_named(aged: Path, seq: int) -> None:
    _purge(aged, 200)
    _attacker_deletes(seq)
    for directory in (aged, None):
        result = _verify(directory)
        assert (result.ok, result.first_bad_seq, result.problem) == (False, seq, "deleted")


def test_the_append_only_trigger_is_back_after_a_purge(aged: Path) -> None:
    _purge(aged, 200)
    with pytest.raises(DBAPIError, match="append-only"):
        with get_engine().begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_record WHERE seq = 5"))
    with pytest.raises(DBAPIError, match="append-only"):
        with get_engine().begin() as conn:
            conn.execute(sa.text("UPDATE audit_record SET outcome = 'failure' WHERE seq = 6"))
    assert _seqs() == [5, 6, 7, 8, 9, 10]


def test_cli_purge_refuses_young_records_then_purges_and_verifies(aged: Path, database: str) -> None:
    env = {**os.environ, "RADLOOP_DATABASE_URL": database, "RADLOOP_DATA_DIR": str(get_settings().data_dir)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "security.cli", "audit", *args, "--dir", str(aged)],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)

    young = cli("purge", "--older-than-days", "30")
    assert young.returncode == 2 and "kept at least 183 days" in young.stderr, young.stdout + young.stderr
    done = cli("purge", "--older-than-days", "200")
    assert done.returncode == 0 and "purged 4" in done.stdout, done.stdout + done.stderr
    ok = cli("verify")
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
