"""The SM3 audit chain on SQLite and PostgreSQL: verify names the first altered, deleted or
reordered record, and signed checkpoints catch a rewritten or cut-off tail (R10.5)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.config import REPO_ROOT, get_settings
from core.db import get_engine
from domain.security_tables import AuditRecord
from security.audit import GENESIS, AuditEvent, AuditTrail, chain_hash, sm3_hex, verify_chain


@pytest.fixture
def trail(database: str, tmp_path) -> AuditTrail:
    return AuditTrail(get_engine, tmp_path / "spool", get_settings().audit_checkpoint_keys, checkpoint_every=5)


def _event(i: int) -> AuditEvent:
    return AuditEvent(user_id="u-radiologist", username="radiologist", role="radiologist", source="10.0.0.9",
                      event_type="patient_read", event_id="110110", action="R", object_type="accession",
                      object_id=f"A{i:04d}", outcome="success", detail={"n": i, "route": "/api/v1/orders/{accession}"})


def _write(trail: AuditTrail, n: int) -> None:
    for i in range(1, n + 1):
        assert trail.record(_event(i)) == "stored"


@pytest.fixture
def attacker(database: str) -> Iterator[sa.Connection]:
    """A connection of someone with the owner's rights who first switches the append-only triggers off."""
    engine = get_engine()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_record DISABLE TRIGGER USER"))
            conn.execute(sa.text("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER"))
        else:
            for trig in ("audit_record_no_update", "audit_record_no_delete",
                         "audit_checkpoint_no_update", "audit_checkpoint_no_delete"):
                conn.execute(sa.text(f"DROP TRIGGER {trig}"))
    with engine.begin() as conn:
        yield conn


def _verify():
    with Session(get_engine()) as s:
        return verify_chain(s, get_settings().audit_checkpoint_keys)


def test_sm3_is_the_standard_one() -> None:
    # GB/T 32905-2016 example 1: SM3("abc")
    assert sm3_hex(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_an_intact_chain_verifies_and_links_by_sm3(trail) -> None:
    _write(trail, 12)
    result = _verify()
    assert result.ok and result.checked == 12 and result.checkpoints == 2
    with Session(get_engine()) as s:
        first, second = s.get(AuditRecord, 1), s.get(AuditRecord, 2)
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    assert second.hash == chain_hash(first.hash, second)


def test_an_altered_record_is_named(trail, attacker) -> None:
    _write(trail, 8)
    attacker.execute(sa.text("UPDATE audit_record SET object_id = 'A9999' WHERE seq = 4"))
    attacker.commit()
    result = _verify()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 4, "altered")


def test_a_deleted_record_is_named(trail, attacker) -> None:
    _write(trail, 8)
    attacker.execute(sa.text("DELETE FROM audit_record WHERE seq = 3"))
    attacker.commit()
    result = _verify()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 3, "deleted")


def test_a_deleted_record_with_the_rest_renumbered_is_named(trail, attacker) -> None:
    _write(trail, 4)
    attacker.execute(sa.text("DELETE FROM audit_record WHERE seq = 2"))
    attacker.execute(sa.text("UPDATE audit_record SET seq = seq - 1 WHERE seq > 2"))
    attacker.commit()
    result = _verify()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, "deleted")


def test_reordered_records_are_named(trail, attacker) -> None:
    _write(trail, 8)
    attacker.execute(sa.text("UPDATE audit_record SET seq = -1 WHERE seq = 5"))
    attacker.execute(sa.text("UPDATE audit_record SET seq = 5 WHERE seq = 6"))
    attacker.execute(sa.text("UPDATE audit_record SET seq = 6 WHERE seq = -1"))
    attacker.commit()
    result = _verify()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 5, "reordered")


def test_a_rewritten_tail_is_caught_by_the_signed_checkpoint(trail, attacker) -> None:
    """Alter seq 3 and recompute every hash after it: the chain is self-consistent, the checkpoint is not."""
    _write(trail, 7)
    rows = attacker.execute(sa.text("SELECT seq FROM audit_record ORDER BY seq")).scalars().all()
    with Session(bind=attacker) as s:
        prev = GENESIS
        for seq in rows:
            row = s.get(AuditRecord, seq)
            if seq == 3:
                row.outcome = "failure"
            row.prev_hash = prev
            row.hash = chain_hash(prev, row)
            prev = row.hash
            s.add(row)
        s.flush()
    attacker.commit()
    result = _verify()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 5, "altered")


def test_a_cut_off_tail_is_caught(trail, attacker) -> None:
    _write(trail, 10)
    attacker.execute(sa.text("DELETE FROM audit_record WHERE seq > 7"))
    attacker.commit()
    result = _verify()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 8, "truncated")


def test_a_forged_checkpoint_is_caught(trail, attacker) -> None:
    _write(trail, 5)
    attacker.execute(sa.text("UPDATE audit_checkpoint SET seq = 4"))
    attacker.commit()
    assert _verify().problem == "bad_checkpoint"


def test_cli_verify_exits_1_and_names_the_seq(trail, attacker, database) -> None:
    _write(trail, 6)
    env = {**os.environ, "RADLOOP_DATABASE_URL": database, "RADLOOP_DATA_DIR": str(get_settings().data_dir)}
    ok = subprocess.run([sys.executable, "-m", "security.cli", "audit", "verify"], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    attacker.execute(sa.text("UPDATE audit_record SET username = 'someone' WHERE seq = 2"))
    attacker.commit()
    bad = subprocess.run([sys.executable, "-m", "security.cli", "audit", "verify"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "first bad seq: 2 (altered)" in bad.stdout
