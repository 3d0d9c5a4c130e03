"""Audit archive (R10.5 "kept >= 6 months, backed up"; R10.1.2): chain segments copied off the database.

`archive` copies the records not yet archived and recorded before a cutoff into
a gzip JSON-lines segment (every field, hashes included) and appends a manifest
line: seq range, the hash the segment starts from, its last hash, and the SM3 of
the file. Segments chain to each other as records do, so `verify_archive` names
the first record that differs, is missing or was moved, across all segments,
without the database. Records stay in the database (it refuses deletes);
removing them after the retention period is a maintenance role's task, done only
once their segment verifies.
"""
from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlmodel import Session, col, select

from domain.security_tables import AuditRecord
from security.audit import GENESIS, VerifyResult, chain_hash, iso, sm3_hex

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
        records = [json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines()] if data else []
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
