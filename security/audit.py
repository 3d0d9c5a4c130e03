"""The central audit trail (R10.5, R10.2.3 "a record of every access"): SM3-chained, spooled, verifiable.

Each record is hashed with its predecessor's hash:
    hash_i = SM3(bytes(hash_{i-1}) || canonical(record_i)),   hash_0 = 64 zeros,
where canonical() is compact, key-sorted UTF-8 JSON of every field except the
hashes themselves (the sequence number included, so moving a record shows).
Every `audit_checkpoint_every` records an HMAC-SM3 checkpoint signs (seq, hash),
so rewriting the tail from some point on, or cutting it off, is detected too.

Recording never raises and never loses an event: when the database cannot take
it, the event is appended (fsync'd) to a spool file under the data directory,
and the spool is replayed, in order, before the next event is stored
(`replay_spool`, also `python -m security.cli audit replay`). Replay is
idempotent on the event's UUID, so a crash mid-replay duplicates nothing.
"""
from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, hmac
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.security_tables import AuditCheckpoint, AuditRecord
from security.clock import Clock, SystemClock

log = logging.getLogger(__name__)

GENESIS = "0" * 64
SPOOL_FILE = "pending.jsonl"
PURGE_EVENT = "audit_purged"  # written by security.audit_archive.purge; verify starts after its last_seq
# The fields the hash covers, in the record's own words (prev_hash and hash excluded).
CHAINED_FIELDS = (
    "seq", "event_uuid", "occurred_at", "recorded_at", "user_id", "username", "role", "source",
    "event_type", "event_id", "action", "object_type", "object_id", "outcome", "detail",
)


def iso(dt: datetime) -> str:
    """Fixed-width UTC text; the same instant always gives the same bytes."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditEvent(BaseModel):
    """What happened, reported by the API, the CLI or an integration; the chain fields come later."""

    event_uuid: str = Field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: str = Field(default_factory=lambda: iso(datetime.now(timezone.utc)))
    user_id: str | None = None
    username: str | None = None
    role: str | None = None
    source: str = ""
    event_type: str
    event_id: str = Field(description="DICOM PS3.15 A.5 EventID code (DCM)")
    action: Literal["C", "R", "U", "D", "E"]
    object_type: str | None = None
    object_id: str | None = None
    outcome: Literal["success", "failure"]
    detail: dict[str, Any] = Field(default_factory=dict, description="JSON scalars; no free-text patient data")


def canonical(record: AuditRecord | dict[str, Any]) -> bytes:
    data = record if isinstance(record, dict) else record.model_dump()
    body = {k: data.get(k) for k in CHAINED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sm3_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def chain_hash(prev_hash: str, record: AuditRecord | dict[str, Any]) -> str:
    return sm3_hex(bytes.fromhex(prev_hash) + canonical(record))


# ---- checkpoints ------------------------------------------------------------------------


def _keys(spec: str) -> dict[str, bytes]:
    keys = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, b64 = part.partition(":")
        keys[kid] = base64.b64decode(b64)
    if not keys:
        raise ValueError("at least one audit checkpoint key is required")
    return keys


def _mac(key: bytes, seq: int, hash_: str, created_at: str) -> str:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(f"{seq}|{hash_}|{created_at}".encode("ascii"))
    return mac.finalize().hex()


def sign_checkpoint(seq: int, hash_: str, created_at: str, keys_spec: str) -> AuditCheckpoint:
    kid, key = next(iter(_keys(keys_spec).items()))
    return AuditCheckpoint(seq=seq, hash=hash_, created_at=created_at, key_id=kid,
                           signature=_mac(key, seq, hash_, created_at))


def checkpoint_valid(cp: AuditCheckpoint, keys_spec: str) -> bool:
    key = _keys(keys_spec).get(cp.key_id)
    if key is None:
        return False
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(f"{cp.seq}|{cp.hash}|{cp.created_at}".encode("ascii"))
    try:
        mac.verify(bytes.fromhex(cp.signature))
    except Exception:  # noqa: BLE001 - InvalidSignature or a malformed hex string: not valid either way
        return False
    return True


# ---- appending -----------------------------------------------------------------------------


def append(session: Session, event: AuditEvent, recorded_at: str, checkpoint_keys: str, checkpoint_every: int) -> bool:
    """Chain `event` after the newest record in this transaction; False when it is already stored.

    Two writers racing for the same seq: the loser's flush fails on the primary
    key and the caller retries on a fresh transaction.
    """
    if session.exec(select(AuditRecord.seq).where(AuditRecord.event_uuid == event.event_uuid)).first() is not None:
        return False
    last = session.exec(select(AuditRecord).order_by(col(AuditRecord.seq).desc()).limit(1)).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    row = AuditRecord(seq=seq, recorded_at=recorded_at, prev_hash=prev, hash="", **event.model_dump())
    row.hash = chain_hash(prev, row)
    session.add(row)
    if checkpoint_every > 0 and seq % checkpoint_every == 0:
        session.add(sign_checkpoint(seq, row.hash, recorded_at, checkpoint_keys))
    session.flush()
    return True


class AuditTrail:
    """Stores audit events in the chain; spools to disk when the database will not take them."""

    MAX_RACE_RETRIES = 50

    def __init__(
        self,
        engine: Callable[[], Engine],
        spool_dir: Path,
        checkpoint_keys: str,
        checkpoint_every: int = 100,
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self.spool_dir = spool_dir
        self._keys = checkpoint_keys
        self._every = checkpoint_every
        self._clock = clock or SystemClock()
        self._thread_lock = threading.Lock()

    @classmethod
    def from_settings(cls, clock: Clock | None = None) -> "AuditTrail":
        from core.config import get_settings
        from core.db import get_engine

        s = get_settings()
        return cls(get_engine, s.resolved_audit_spool_dir, s.audit_checkpoint_keys, s.audit_checkpoint_every, clock)

    @property
    def spool_path(self) -> Path:
        return self.spool_dir / SPOOL_FILE

    @contextmanager
    def _spool_lock(self) -> Iterator[None]:
        """One writer of the spool at a time, across threads and processes (API, worker, CLI)."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.spool_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _store(self, event: AuditEvent) -> bool:
        for _ in range(self.MAX_RACE_RETRIES):
            try:
                with Session(self._engine()) as session:
                    stored = append(session, event, iso(self._clock.now()), self._keys, self._every)
                    session.commit()
                    return stored
            except IntegrityError:
                continue  # another writer took this seq; chain after theirs
        raise RuntimeError(f"audit chain stayed contended for {self.MAX_RACE_RETRIES} attempts")

    def _spool(self, event: AuditEvent) -> None:
        line = event.model_dump_json() + "\n"
        with open(self.spool_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _has_spool(self) -> bool:
        try:
            return self.spool_path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _replay_locked(self) -> int:
        if not self._has_spool():
            return 0
        lines = [ln for ln in self.spool_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        done = 0
        try:
            for line in lines:
                self._store(AuditEvent.model_validate_json(line))
                done += 1
        finally:
            remaining = lines[done:]
            tmp = self.spool_path.with_suffix(".tmp")
            tmp.write_text("".join(ln + "\n" for ln in remaining), encoding="utf-8")
            os.replace(tmp, self.spool_path)
        return done

    def replay_spool(self) -> int:
        """Store every spooled event, oldest first; returns how many were replayed. Raises if the store is down."""
        with self._spool_lock():
            return self._replay_locked()

    def record(self, event: AuditEvent) -> Literal["stored", "spooled"]:
        """Store the event (after any spooled ones), or spool it; never raises, never drops."""
        with self._spool_lock():
            try:
                self._replay_locked()
                self._store(event)
                return "stored"
            except Exception as err:  # noqa: BLE001 - whatever stops the database, the event must survive
                log.warning("audit store unavailable (%s); spooling event %s", err, event.event_uuid)
                self._spool(event)
                return "spooled"

    def store_now(self, event: AuditEvent) -> bool:
        """Store the event now or not at all (no spooling): for events that grant something, like
        break-glass, which must not take effect later when a spool is replayed."""
        with self._spool_lock():
            try:
                self._replay_locked()
                self._store(event)
                return True
            except Exception as err:  # noqa: BLE001 - the caller refuses the grant
                log.warning("audit store unavailable (%s); event %s not stored", err, event.event_uuid)
                return False

    def spooled(self) -> list[AuditEvent]:
        if not self._has_spool():
            return []
        return [AuditEvent.model_validate_json(ln) for ln in self.spool_path.read_text("utf-8").splitlines() if ln.strip()]


# ---- verifying -----------------------------------------------------------------------------


class VerifyResult(BaseModel):
    ok: bool
    checked: int
    checkpoints: int = 0
    first_bad_seq: int | None = None
    problem: Literal["altered", "deleted", "reordered", "truncated", "bad_checkpoint"] | None = None
    message: str = "chain intact"


def purged_up_to(rows: list[AuditRecord]) -> tuple[int, str]:
    """(last purged seq, its hash) named by the newest purge record, else (0, GENESIS).

    A purge record is itself chained, so the walk below catches a forged or altered one.
    """
    purges = [r.detail for r in rows if r.event_type == PURGE_EVENT and r.outcome == "success"]
    if not purges:
        return 0, GENESIS
    last = max(purges, key=lambda d: int(d.get("last_seq", 0)))
    return int(last.get("last_seq", 0)), str(last.get("last_hash", GENESIS))


def verify_chain(
    session: Session, checkpoint_keys: str, archived_hash: Callable[[int], str | None] | None = None,
) -> VerifyResult:
    """Walk the chain in seq order and name the first record that is not what was written.

    altered: its content no longer gives its hash (or a signed checkpoint disagrees);
    deleted: a seq is missing, or a record's predecessor hash belongs to no record;
    reordered: a record's predecessor hash belongs to a record stored elsewhere in the chain;
    truncated: a signed checkpoint names a seq past the end of the chain.
    After a purge (security.audit_archive.purge) the chain starts right after the last purged
    seq, from its hash as the purge record states it; with `archived_hash` (seq -> the archive's
    hash of that record) the archive must hold that same hash, so the start is anchored off-database.
    """
    rows = session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all()
    known = {r.hash for r in rows}
    purged, prev = purged_up_to(list(rows))
    if purged and archived_hash is not None and archived_hash(purged) != prev:
        return VerifyResult(ok=False, checked=0, first_bad_seq=purged, problem="deleted",
                            message=f"records up to seq {purged} were purged but the archive does not hold "
                            f"seq {purged} with the hash the purge record names")
    expected = purged + 1
    hash_at: dict[int, str] = {}
    for row in rows:
        checked = expected - 1 - purged
        if row.seq != expected:
            return VerifyResult(ok=False, checked=checked, first_bad_seq=expected, problem="deleted",
                                message=f"record seq {expected} is missing (next present is {row.seq})")
        if row.prev_hash != prev:
            moved = row.prev_hash in known
            return VerifyResult(
                ok=False, checked=checked, first_bad_seq=row.seq, problem="reordered" if moved else "deleted",
                message=(f"record seq {row.seq} was chained after another record: records were reordered"
                         if moved else f"record seq {row.seq} was chained after a record that is gone or rewritten"),
            )
        if chain_hash(row.prev_hash, row) != row.hash:
            return VerifyResult(ok=False, checked=checked, first_bad_seq=row.seq, problem="altered",
                                message=f"record seq {row.seq} was altered: its content does not give its hash")
        hash_at[row.seq] = row.hash
        prev, expected = row.hash, expected + 1
    last_seq = expected - 1
    checkpoints = session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq))).all()
    for cp in checkpoints:
        if not checkpoint_valid(cp, checkpoint_keys):
            return VerifyResult(ok=False, checked=len(rows), checkpoints=len(checkpoints), first_bad_seq=cp.seq,
                                problem="bad_checkpoint", message=f"checkpoint at seq {cp.seq} has a bad signature")
        if cp.seq <= purged:  # its record was purged: check it against the archive when we have it
            if archived_hash is not None and archived_hash(cp.seq) != cp.hash:
                return VerifyResult(ok=False, checked=len(rows), checkpoints=len(checkpoints), first_bad_seq=cp.seq,
                                    problem="altered",
                                    message=f"the archived record seq {cp.seq} disagrees with its signed checkpoint")
            continue
        if cp.seq not in hash_at:
            return VerifyResult(ok=False, checked=len(rows), checkpoints=len(checkpoints), first_bad_seq=last_seq + 1,
                                problem="truncated",
                                message=f"signed checkpoint at seq {cp.seq} but the chain ends at seq {last_seq}")
        if hash_at[cp.seq] != cp.hash:
            return VerifyResult(ok=False, checked=len(rows), checkpoints=len(checkpoints), first_bad_seq=cp.seq,
                                problem="altered",
                                message=f"the chain up to seq {cp.seq} was rewritten: it disagrees with its signed checkpoint")
    message = f"chain intact (seq 1..{purged} purged after archiving)" if purged else "chain intact"
    return VerifyResult(ok=True, checked=len(rows), checkpoints=len(checkpoints), message=message)
