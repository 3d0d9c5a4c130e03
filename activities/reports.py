"""Report versions (R7.1.1, R7.1.2, R4.2.6) and the one-valid-version rule (R7.1.4)."""
from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlmodel import select
from temporalio import activity

from activities.events import EventInput, write_event
from core.config import get_settings
from core.db import session_scope
from domain.tables import ReportDistribution, ReportVersion, User
from security.audit import AuditEvent, AuditTrail, iso
from security.signatures import SignatureError, sign_version


class ReportDraft(BaseModel):
    accession_number: str
    version: int
    tier: str
    findings: str
    impression: str
    recommendation: str = ""
    source: str = "human"
    author_id: str
    author_role: str
    critical: bool = False
    critical_finding: str | None = None
    comment: str | None = None
    at: datetime


class SignRequest(BaseModel):
    accession_number: str
    version: int
    signer_id: str
    at: datetime
    recall_reason: str | None = None


class PublishRequest(BaseModel):
    accession_number: str
    version: int
    kind: str  # final | corrected
    at: datetime


@activity.defn
def save_report_version(d: ReportDraft) -> int:
    """Every step of the report is kept as its own version with author and time."""
    with session_scope() as s:
        row = s.exec(select(ReportVersion).where(
            ReportVersion.accession_number == d.accession_number, ReportVersion.version == d.version
        )).first()
        if row is None:
            s.add(ReportVersion(
                accession_number=d.accession_number, version=d.version, tier=d.tier, status="working",
                findings=d.findings, impression=d.impression, recommendation=d.recommendation,
                source=d.source, author_id=d.author_id, author_role=d.author_role, critical=d.critical,
                critical_finding=d.critical_finding, comment=d.comment, created_at=d.at,
            ))
            write_event(s, EventInput(
                key=f"report/{d.accession_number}/{d.version}", accession_number=d.accession_number, at=d.at,
                actor=d.author_id, kind=f"report_{d.tier}", summary=f"report v{d.version} ({d.tier}) saved",
                detail={"version": d.version, "tier": d.tier, "critical": d.critical},
            ))
        return d.version


def _signature_audit(req: SignRequest, signer: tuple[str, str] | None, outcome: str, detail: dict,
                     event_uuid: str | None) -> None:
    """Every signature operation leaves an audit record (R10.2.4); a retried success records once."""
    event = AuditEvent(
        **({"event_uuid": event_uuid} if event_uuid else {}), occurred_at=iso(req.at), user_id=req.signer_id,
        username=signer[0] if signer else None, role=signer[1] if signer else None, source="worker", event_type="report_sign", event_id="110110",
        action="C", object_type="accession", object_id=req.accession_number, outcome=outcome,  # type: ignore[arg-type]
        detail={"version": req.version, **detail},
    )
    AuditTrail.from_settings().record(event)


@activity.defn
def sign_report(req: SignRequest) -> None:
    """Make `version` the single valid report, sealed with the signer's electronic signature
    (security.signatures); any earlier valid one is recalled, and the new signature names it."""
    settings = get_settings()
    signer: tuple[str, str] | None = None  # (username, role), read before anything can roll back
    try:
        with session_scope() as s:
            user = s.get(User, req.signer_id)
            signer = (user.username, user.role) if user else None
            rows = s.exec(select(ReportVersion).where(ReportVersion.accession_number == req.accession_number)).all()
            target = next((r for r in rows if r.version == req.version), None)
            if target is None:
                raise SignatureError(f"accession {req.accession_number} has no report version {req.version}")
            previous = next((r.version for r in rows if r.status == "valid" and r.version != req.version), None)
            for r in rows:
                if r.status == "valid" and r.version != req.version:
                    r.status, r.recalled_at, r.recall_reason = "recalled", req.at, req.recall_reason or "superseded"
            target.status, target.signed_by, target.signed_at = "valid", req.signer_id, req.at
            sig, _created = sign_version(
                s, req.accession_number, req.version, req.signer_id,
                user.display_name if user else "", user.role if user else "", req.at,
                settings.signature_keys, settings.signature_digest,
                supersedes_version=previous,
            )
            detail = {"digest_alg": sig.digest_alg, "content_digest": sig.content_digest, "key_id": sig.key_id,
                      "supersedes_version": sig.supersedes_version}
            write_event(s, EventInput(
                key=f"sign/{req.accession_number}/{req.version}", accession_number=req.accession_number, at=req.at,
                actor=req.signer_id, kind="report_signed", summary=f"report v{req.version} signed",
                detail={"version": req.version, "recall_reason": req.recall_reason, "digest": sig.content_digest},
            ))
    except Exception as err:
        _signature_audit(req, signer, "failure", {"error": f"{type(err).__name__}: {err}"[:300]}, None)
        raise
    _signature_audit(req, signer, "success", detail,
                     uuid.uuid5(uuid.NAMESPACE_URL, f"radloop:sign/{req.accession_number}/{req.version}").hex)


@activity.defn
def publish_report(req: PublishRequest) -> None:
    """Distribution: a row + event per published version (the HL7 work adds ORU^R01)."""
    with session_scope() as s:
        exists = s.exec(select(ReportDistribution).where(
            ReportDistribution.accession_number == req.accession_number,
            ReportDistribution.report_version == req.version,
        )).first()
        if exists is None:
            s.add(ReportDistribution(accession_number=req.accession_number, report_version=req.version,
                                     kind=req.kind, published_at=req.at))
            write_event(s, EventInput(
                key=f"publish/{req.accession_number}/{req.version}", accession_number=req.accession_number,
                at=req.at, actor="system", kind="report_published",
                summary=f"report v{req.version} published ({req.kind})", detail={"version": req.version, "kind": req.kind},
            ))
