"""Side effects of the export approval workflow: the request row, the package, expiry, the audit trail.

Each step leaves one audit record (EventID 110106 Export) keyed by export and
step, so a retried activity stores it once (the trail is idempotent on the key).
"""
from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from temporalio import activity

from core.config import get_settings
from core.db import session_scope
from domain.export_tables import DataExport
from domain.exports import EXPORT_EVENT_ID, ExportInput, ExportState
from domain.loop import Actor
from security.audit import AuditEvent, AuditTrail
from services.exports import aware, build_package, ensure_row, exports_dir


class ExportDecided(BaseModel):
    export_id: str
    state: ExportState
    approver: Actor | None = None
    reason: str = ""
    at: datetime


class BuildExport(BaseModel):
    export_id: str
    at: datetime


class BuiltExport(BaseModel):
    file_name: str
    sha256: str
    size_bytes: int
    records: int
    instances: int
    excluded: dict[str, int] = Field(default_factory=dict)


class ExportReady(BaseModel):
    export_id: str
    ready_at: datetime
    expires_at: datetime


class ExpireExport(BaseModel):
    export_id: str
    at: datetime


def audit(export_id: str, step: str, action: str, who: Actor | None, outcome: str = "success", **detail) -> None:
    """One audit record per export step; never raises (the trail spools when its store is down)."""
    key = uuid.uuid5(uuid.NAMESPACE_URL, f"radloop:export/{export_id}/{step}").hex
    AuditTrail.from_settings().record(AuditEvent(
        event_uuid=key, user_id=who.user_id if who else None, username=None, role=who.role.value if who else None,
        source="worker", event_type=f"export_{step}", event_id=EXPORT_EVENT_ID, action=action,  # type: ignore[arg-type]
        object_type="export", object_id=export_id, outcome=outcome, detail=detail,  # type: ignore[arg-type]
    ))


@activity.defn
def record_export_requested(inp: ExportInput) -> None:
    with session_scope() as s:
        ensure_row(s, inp, activity.info().current_attempt_scheduled_time)
        s.commit()
    audit(inp.export_id, "requested", "C", inp.requested_by, use=inp.use.value, exams=len(inp.accession_numbers),
          include_images=inp.include_images)


@activity.defn
def record_export_decision(d: ExportDecided) -> None:
    with session_scope() as s:
        row = s.get(DataExport, d.export_id)
        if row is None:
            raise RuntimeError(f"export row {d.export_id} missing")
        row.state = d.state.value
        row.approver_id = d.approver.user_id if d.approver else None
        row.decision_reason, row.decided_at = d.reason, aware(d.at)
        s.add(row)
        s.commit()
    audit(d.export_id, d.state.value, "U", d.approver, decision=d.state.value)


@activity.defn
def build_export(b: BuildExport) -> BuiltExport:
    settings = get_settings()
    with session_scope() as s:
        row = s.get(DataExport, b.export_id)
        if row is None:
            raise RuntimeError(f"export row {b.export_id} missing")
        pkg = build_package(s, row, settings.data_dir / "dicom", exports_dir(settings.data_dir), aware(b.at))  # type: ignore[arg-type]
        row.file_name, row.sha256, row.size_bytes = pkg.file_name, pkg.sha256, pkg.size_bytes
        row.records, row.instances, row.excluded = pkg.records, pkg.instances, pkg.excluded
        s.add(row)
        s.commit()
    return BuiltExport(file_name=pkg.file_name, sha256=pkg.sha256, size_bytes=pkg.size_bytes, records=pkg.records,
                       instances=pkg.instances, excluded=pkg.excluded)


@activity.defn
def mark_export_ready(r: ExportReady) -> None:
    with session_scope() as s:
        row = s.get(DataExport, r.export_id)
        if row is None:
            raise RuntimeError(f"export row {r.export_id} missing")
        row.state, row.ready_at, row.expires_at = ExportState.ready.value, aware(r.ready_at), aware(r.expires_at)
        s.add(row)
        s.commit()
        detail = dict(records=row.records, instances=row.instances, sha256=row.sha256, excluded=row.excluded,
                      expires_at=aware(r.expires_at).isoformat())  # type: ignore[union-attr]
    audit(r.export_id, "created", "E", None, **detail)


@activity.defn
def expire_export(e: ExpireExport) -> None:
    """The link ends: the file is deleted and the row says so (a retry finds it done)."""
    settings = get_settings()
    with session_scope() as s:
        row = s.get(DataExport, e.export_id)
        if row is None:
            return
        if row.file_name:
            (exports_dir(settings.data_dir) / row.file_name).unlink(missing_ok=True)
        if row.state != ExportState.expired:
            row.state, row.expired_at = ExportState.expired.value, aware(e.at)
            s.add(row)
            s.commit()
    audit(e.export_id, "expired", "D", None, file_deleted=True)
