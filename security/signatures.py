"""Electronic signatures of reports (R10.2.4, R8.3.1 "reviewer e-signature with system time").

Signing a report version binds three things: the signer, the signing time, and a
digest (SM3 by default, or SHA-256) of the version's exact canonical content:

    canonical = compact key-sorted UTF-8 JSON of {accession_number, version, findings,
                impression, recommendation, critical, critical_finding}

The signature statement (the canonical signer, time, digest and the version it
supersedes) is sealed with HMAC-SM3 under a server key (`RADLOOP_SIGNATURE_KEYS`,
key ID stored, keys rotatable), so whoever can write the database still cannot
move a signature to another person, time or text without the seal failing.
Verification recomputes both: the report's digest ("was the report changed since
it was signed?") and the seal ("was the signature itself changed?").

A correction is signed again: the amended version gets its own signature naming
the version it supersedes; the recalled version's signature still verifies, and
says its version is no longer the valid one.

Signature rows are append-only in the database (security.audit_guard). Someone who
gets around that and deletes a row does not turn the version into "unsigned": the
report version's own row records who signed it and when (and only signing makes a
version valid or recalled), and every re-signature names the version it superseded,
so verification answers `signature_missing`.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Literal

from cryptography.hazmat.primitives import hashes, hmac
from pydantic import BaseModel
from sqlmodel import Session, col, select

from domain.signature_tables import ReportSignature
from domain.tables import ReportVersion
from security.audit import iso

SIGNED_FIELDS = ("accession_number", "version", "findings", "impression", "recommendation", "critical", "critical_finding")
DIGESTS = {"sm3": hashes.SM3, "sha256": hashes.SHA256}

Status = Literal["intact", "content_changed", "signature_altered", "signature_missing", "unsigned"]
SIGNED_STATES = ("valid", "recalled")  # only sign_report makes a version valid, and only a valid one is recalled


class SignatureError(ValueError):
    """A signature that cannot be made: unknown version, unknown digest, no key."""


def canonical_content(v: ReportVersion) -> bytes:
    body = {f: getattr(v, f) for f in SIGNED_FIELDS}
    body["recommendation"] = body["recommendation"] or ""
    body["critical"] = bool(body["critical"])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_digest(v: ReportVersion, alg: str) -> str:
    if alg not in DIGESTS:
        raise SignatureError(f"unknown digest {alg!r} (sm3 or sha256)")
    h = hashes.Hash(DIGESTS[alg]())
    h.update(canonical_content(v))
    return h.finalize().hex()


def _keys(spec: str) -> dict[str, bytes]:
    keys = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, b64 = part.partition(":")
        keys[kid.strip()] = base64.b64decode(b64)
    if not keys:
        raise SignatureError("no signature key configured (RADLOOP_SIGNATURE_KEYS)")
    return keys


def statement(sig: ReportSignature) -> bytes:
    """What the seal covers: every field of the signature row but its id and the seal itself."""
    body = {
        "accession_number": sig.accession_number, "version": sig.version, "signer_id": sig.signer_id,
        "signer_name": sig.signer_name, "signer_role": sig.signer_role, "signed_at": sig.signed_at,
        "digest_alg": sig.digest_alg, "content_digest": sig.content_digest,
        "supersedes_version": sig.supersedes_version, "key_id": sig.key_id,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _mac(key: bytes, data: bytes) -> hmac.HMAC:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac


def seal_valid(sig: ReportSignature, keys_spec: str) -> bool:
    key = _keys(keys_spec).get(sig.key_id)
    if key is None:
        return False
    try:
        _mac(key, statement(sig)).verify(bytes.fromhex(sig.seal))
    except Exception:  # noqa: BLE001 - InvalidSignature or malformed hex: not valid either way
        return False
    return True


def _version(session: Session, accession: str, version: int) -> ReportVersion | None:
    return session.exec(select(ReportVersion).where(
        ReportVersion.accession_number == accession, ReportVersion.version == version)).first()


def signature_of(session: Session, accession: str, version: int) -> ReportSignature | None:
    return session.exec(select(ReportSignature).where(
        ReportSignature.accession_number == accession, ReportSignature.version == version)).first()


def sign_version(
    session: Session, accession: str, version: int, signer_id: str, signer_name: str, signer_role: str,
    at: datetime, keys_spec: str, digest_alg: str = "sm3", supersedes_version: int | None = None,
) -> tuple[ReportSignature, bool]:
    """Seal the version's current content under the signer's name; (row, created).

    Idempotent: a version already signed keeps its first signature (an activity retry
    must not re-date it), and the existing row is returned with created=False.
    """
    existing = signature_of(session, accession, version)
    if existing is not None:
        return existing, False
    v = _version(session, accession, version)
    if v is None:
        raise SignatureError(f"accession {accession} has no report version {version}")
    kid, key = next(iter(_keys(keys_spec).items()))
    sig = ReportSignature(
        accession_number=accession, version=version, signer_id=signer_id, signer_name=signer_name,
        signer_role=signer_role, signed_at=iso(at), digest_alg=digest_alg, content_digest=content_digest(v, digest_alg),
        supersedes_version=supersedes_version, key_id=kid, seal="",
    )
    sig.seal = _mac(key, statement(sig)).finalize().hex()
    session.add(sig)
    session.flush()
    return sig, True


class SignatureCheck(BaseModel):
    """The answer to "is this signed report still what was signed?"."""

    accession_number: str
    version: int
    status: Status
    message: str
    version_status: str | None = None
    signer_id: str | None = None
    signer_name: str | None = None
    signer_role: str | None = None
    signed_at: str | None = None
    digest_alg: str | None = None
    signed_digest: str | None = None
    current_digest: str | None = None
    seal_valid: bool | None = None
    supersedes_version: int | None = None
    superseded_by_version: int | None = None


def verify_version(session: Session, accession: str, version: int, keys_spec: str) -> SignatureCheck | None:
    """None when the version does not exist; otherwise what its signature says now."""
    v = _version(session, accession, version)
    if v is None:
        return None
    sig = signature_of(session, accession, version)
    later = session.exec(select(ReportSignature.version).where(
        ReportSignature.accession_number == accession, ReportSignature.supersedes_version == version,
    ).order_by(col(ReportSignature.version))).first()
    if sig is None:
        return _without_signature(v, later)
    sealed = seal_valid(sig, keys_spec)
    current = content_digest(v, sig.digest_alg) if sig.digest_alg in DIGESTS else None
    if not sealed:
        status: Status = "signature_altered"
        message = "the signature record was altered after signing: its seal does not match"
    elif current != sig.content_digest:
        status, message = "content_changed", f"report version {version} was changed after it was signed"
    else:
        status, message = "intact", f"report version {version} is exactly what {sig.signer_id} signed at {sig.signed_at}"
    if v.status == "recalled":
        message += f"; this version was recalled ({v.recall_reason or 'superseded'})"
    return SignatureCheck(
        accession_number=accession, version=version, status=status, message=message, version_status=v.status,
        signer_id=sig.signer_id, signer_name=sig.signer_name, signer_role=sig.signer_role, signed_at=sig.signed_at,
        digest_alg=sig.digest_alg, signed_digest=sig.content_digest, current_digest=current, seal_valid=sealed,
        supersedes_version=sig.supersedes_version, superseded_by_version=later,
    )


def _stamp(at: datetime) -> str:
    """A stored time as the seal's text; SQLite gives it back without its UTC offset."""
    return iso(at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc))


def signing_evidence(v: ReportVersion, superseded_by: int | None) -> list[str]:
    """What, outside the signature table, says this version was signed (empty: it never was)."""
    found = []
    if v.signed_by or v.signed_at:
        when = f" at {_stamp(v.signed_at)}" if v.signed_at else ""
        found.append(f"the report version records it was signed by {v.signed_by or '?'}{when}")
    if v.status in SIGNED_STATES:
        found.append(f"its status is {v.status!r}, which only signing gives")
    if superseded_by is not None:
        found.append(f"the signature of version {superseded_by} names it as the version it superseded")
    return found


def _without_signature(v: ReportVersion, superseded_by: int | None) -> SignatureCheck:
    evidence = signing_evidence(v, superseded_by)
    if not evidence:
        return SignatureCheck(accession_number=v.accession_number, version=v.version, status="unsigned",
                              version_status=v.status, message=f"report version {v.version} was never signed")
    return SignatureCheck(
        accession_number=v.accession_number, version=v.version, status="signature_missing", version_status=v.status,
        message=(f"report version {v.version} was signed but its signature record is missing "
                 f"(deleted from the database): {'; '.join(evidence)}"),
        signer_id=v.signed_by, signed_at=_stamp(v.signed_at) if v.signed_at else None, superseded_by_version=superseded_by,
    )


def verify_accession(session: Session, accession: str, keys_spec: str) -> list[SignatureCheck]:
    """Every signed version of an accession, oldest first: the chain of signatures and re-signatures,
    and the versions that were signed but whose signature row is gone (`signature_missing`)."""
    signatures = session.exec(select(ReportSignature).where(ReportSignature.accession_number == accession)).all()
    versions = {sig.version for sig in signatures}
    versions |= {sig.supersedes_version for sig in signatures if sig.supersedes_version is not None}
    for v in session.exec(select(ReportVersion).where(ReportVersion.accession_number == accession)).all():
        if signing_evidence(v, None):
            versions.add(v.version)
    return [c for n in sorted(versions) if (c := verify_version(session, accession, n, keys_spec)) is not None]
