"""Audit archive (R10.5 "kept >= 6 months, backed up"; R10.1.2): chain segments copied off the database.

`archive` copies the records not yet archived and recorded before a cutoff into
a gzip JSON-lines segment (every field, hashes included) and appends a manifest
line: seq range, the hash the segment starts from, its last hash, and the SM3 of
the file. Segments chain to each other as records do, so `verify_archive` names
the first record that differs, is missing or was moved, across all segments,
without the database.

`purge` removes archived records older than the retention period
(`audit_retention_days`, at least 180) from the database: only when the whole
archive verifies and every row to remove equals its archived copy, as one
transaction that first appends an `audit_purged` record naming the removed seq
range and the last removed hash (so `verify_chain` knows where the database chain
now starts), then deletes with the append-only trigger off for that transaction
only (security.audit_guard.deletes_allowed; on PostgreSQL this needs the table
owner, not the app's INSERT+SELECT role).
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete
from sqlmodel import Session, col, select

from core.config import get_settings
from domain.security_tables import AuditRecord
from security.audit import (
    GENESIS, PURGE_EVENT, AuditEvent, VerifyResult, append, chain_hash, iso, purged_up_to, sm3_hex,
)
from security.audit_guard import deletes_allowed

MANIFEST = "manifest.jsonl"


class Segment(BaseModel):
    file: str
    first_seq: int
    last_seq: int
    first_prev_hash: str
    last_hash: str
    file_sm3: str
    created_at: str


def segments(directory: Path) -> list[Segment]:
    path = directory / MANIFEST
    if not path.exists():
        return []
    return [Segment.model_validate_json(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines()] if data else []


def _segment_records(directory: Path, seg: Segment) -> list[dict[str, Any]]:
    path = directory / seg.file
    return _records(path.read_bytes()) if path.exists() else []


def archived_hashes(directory: Path) -> Callable[[int], str | None]:
    """seq -> the hash the archive holds for it (None when not archived); what `verify_chain` anchors to."""
    segs, cache = segments(directory), {}

    def lookup(seq: int) -> str | None:
        for seg in segs:
            if seg.first_seq <= seq <= seg.last_seq:
                if seg.file not in cache:
                    cache[seg.file] = {rec["seq"]: rec["hash"] for rec in _segment_records(directory, seg)}
                return cache[seg.file].get(seq)
        return None

    return lookup


def archive(session: Session, directory: Path, before: datetime, now: datetime) -> Segment | None:
    """Copy the next contiguous run of records recorded before `before`; None when there is none."""
    done = segments(directory)
    after = done[-1].last_seq if done else 0
    rows = []
    for row in session.exec(select(AuditRecord).where(col(AuditRecord.seq) > after).order_by(col(AuditRecord.seq))):
        if row.recorded_at >= iso(before):
            break
        rows.append(row)
    if not rows:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    name = f"audit-{rows[0].seq:012d}-{rows[-1].seq:012d}.jsonl.gz"
    body = "".join(json.dumps(r.model_dump(), ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    data = gzip.compress(body.encode("utf-8"), mtime=0)
    (directory / name).write_bytes(data)
    segment = Segment(file=name, first_seq=rows[0].seq, last_seq=rows[-1].seq, first_prev_hash=rows[0].prev_hash,
                      last_hash=rows[-1].hash, file_sm3=sm3_hex(data), created_at=iso(now))
    with (directory / MANIFEST).open("a", encoding="utf-8") as f:
        f.write(segment.model_dump_json() + "\n")
    return segment


def verify_archive(directory: Path) -> VerifyResult:
    """Every segment whole (SM3 of the file), every record chained, segments chained to each other."""
    prev, expected, checked = GENESIS, 1, 0
    for seg in segments(directory):
        path = directory / seg.file
        data = path.read_bytes() if path.exists() else b""
        if seg.first_prev_hash != prev or seg.first_seq != expected:
            return VerifyResult(ok=False, checked=checked, first_bad_seq=expected, problem="deleted",
                                message=f"segment {seg.file} does not follow the one before it")
        records = _records(data)
        present = {rec["seq"] for rec in records}
        for rec in records:
            if rec["seq"] != expected:
                moved = expected in present
                return VerifyResult(ok=False, checked=checked, first_bad_seq=expected,
                                    problem="reordered" if moved else "deleted",
                                    message=f"archived record seq {expected} is "
                                    f"{'out of order' if moved else 'missing'} in {seg.file}")
            if rec["prev_hash"] != prev:
                return VerifyResult(ok=False, checked=checked, first_bad_seq=rec["seq"], problem="reordered",
                                    message=f"archived record seq {rec['seq']} does not follow seq {expected - 1}")
            if chain_hash(prev, rec) != rec["hash"]:
                return VerifyResult(ok=False, checked=checked, first_bad_seq=rec["seq"], problem="altered",
                                    message=f"archived record seq {rec['seq']} in {seg.file} was altered")
            prev, expected, checked = rec["hash"], expected + 1, checked + 1
        if expected - 1 != seg.last_seq or prev != seg.last_hash or sm3_hex(data) != seg.file_sm3:
            return VerifyResult(ok=False, checked=checked, first_bad_seq=expected, problem="truncated",
                                message=f"segment {seg.file} does not match its manifest line")
    return VerifyResult(ok=True, checked=checked, message=f"archive intact up to seq {expected - 1}")


class PurgeRefused(RuntimeError):
    """The purge would remove records that are too young, not archived, or archived in a broken archive."""


def purge(session: Session, directory: Path, before: datetime, now: datetime, operator: str = "maintenance") -> int:
    """Remove the archived records recorded before `before` (oldest first, contiguous); returns how many.

    Refuses (PurgeRefused, nothing removed) when `before` is inside the retention period,
    when the archive does not verify, or when a row differs from its archived copy.
    Commits its own transaction: the purge record, the deletes and the trigger restored.
    """
    settings = get_settings()
    floor = now - timedelta(days=settings.audit_retention_days)
    if before > floor:
        raise PurgeRefused(f"audit records are kept at least {settings.audit_retention_days} days: "
                           f"purge only before {iso(floor)}, not {iso(before)}")
    check = verify_archive(directory)
    if not check.ok:
        raise PurgeRefused(f"the audit archive in {directory} does not verify, nothing purged: {check.message}")
    done = segments(directory)
    if not done:
        return 0
    purges = session.exec(select(AuditRecord).where(AuditRecord.event_type == PURGE_EVENT)).all()
    already, _ = purged_up_to(list(purges))
    rows: list[AuditRecord] = []
    for row in session.exec(select(AuditRecord).where(col(AuditRecord.seq) <= done[-1].last_seq)
                            .order_by(col(AuditRecord.seq))):
        if row.recorded_at >= iso(before):
            break
        rows.append(row)
    if not rows:
        return 0
    first, last = rows[0].seq, rows[-1].seq
    if first != already + 1 or last - first + 1 != len(rows):
        raise PurgeRefused(f"the database chain has a gap before seq {last} (it starts at {first}, "
                           f"purged up to {already}): run `audit verify` first, nothing purged")
    copies = {rec["seq"]: rec for seg in done if seg.first_seq <= last and seg.last_seq >= first
              for rec in _segment_records(directory, seg)}
    for row in rows:
        copy = copies.get(row.seq)
        if copy is None or (copy["hash"], copy["prev_hash"]) != (row.hash, row.prev_hash) \
                or chain_hash(row.prev_hash, row) != row.hash:
            raise PurgeRefused(f"record seq {row.seq} differs from its archived copy, nothing purged")
    try:
        append(session, AuditEvent(
            occurred_at=iso(now), username=operator, role="maintenance", source="cli", event_type=PURGE_EVENT,
            event_id="110101", action="D", object_type="audit_record", object_id=f"{first}..{last}",
            outcome="success",
            detail={"first_seq": first, "last_seq": last, "last_hash": rows[-1].hash, "count": len(rows),
                    "before": iso(before)},
        ), iso(now), settings.audit_checkpoint_keys, settings.audit_checkpoint_every)
        conn = session.connection()
        with deletes_allowed(conn, AuditRecord.__tablename__):
            removed = conn.execute(delete(AuditRecord).where(col(AuditRecord.seq) >= first,
                                                                col(AuditRecord.seq) <= last)).rowcount
            if removed != len(rows):
                raise PurgeRefused(f"expected to remove {len(rows)} records, the database removed {removed}")
        session.commit()
    except Exception:
        session.rollback()
        raise
    return len(rows)
