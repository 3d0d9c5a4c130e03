"""Report versions (R7.1.1, R7.1.2, R4.2.6) and the one-valid-version rule (R7.1.4)."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import select
from temporalio import activity

from activities.events import EventInput, write_event
from core.db import session_scope
from domain.tables import ReportDistribution, ReportVersion


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


@activity.defn
def sign_report(req: SignRequest) -> None:
    """Make `version` the single valid report; any earlier valid one is recalled."""
    with session_scope() as s:
        rows = s.exec(select(ReportVersion).where(ReportVersion.accession_number == req.accession_number)).all()
        target = next(r for r in rows if r.version == req.version)
        for r in rows:
            if r.status == "valid" and r.version != req.version:
                r.status, r.recalled_at, r.recall_reason = "recalled", req.at, req.recall_reason or "superseded"
        target.status, target.signed_by, target.signed_at = "valid", req.signer_id, req.at
        write_event(s, EventInput(
            key=f"sign/{req.accession_number}/{req.version}", accession_number=req.accession_number, at=req.at,
            actor=req.signer_id, kind="report_signed", summary=f"report v{req.version} signed",
            detail={"version": req.version, "recall_reason": req.recall_reason},
        ))


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
