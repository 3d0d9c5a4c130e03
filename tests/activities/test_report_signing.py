"""The senior's sign step seals the report (R10.2.4, R8.3.1) and audits it, once, even when retried."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from activities.reports import ReportDraft, SignRequest, save_report_version, sign_report
from core.config import get_settings
from core.db import get_engine
from domain.security_tables import AuditRecord
from security.audit import verify_chain
from security.signatures import SignatureError, verify_accession

ACC = "A2026030200002"
AT = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def _draft(version: int, tier: str, findings: str) -> ReportDraft:
    return ReportDraft(accession_number=ACC, version=version, tier=tier, findings=findings, impression="未见异常。",
                       author_id="u-senior_radiologist", author_role="senior_radiologist", at=AT)


def _sign_records(s: Session) -> list[AuditRecord]:
    return list(s.exec(select(AuditRecord).where(AuditRecord.event_type == "report_sign")).all())


def test_signing_seals_audits_once_and_re_signs_after_correction(database: str) -> None:
    save_report_version(_draft(1, "final", "双肺纹理清晰。"))
    req = SignRequest(accession_number=ACC, version=1, signer_id="u-senior_radiologist", at=AT)
    sign_report(req)
    sign_report(req)  # an activity retry: no second signature, no second audit record
    save_report_version(_draft(2, "amended", "双肺纹理增粗。"))
    sign_report(SignRequest(accession_number=ACC, version=2, signer_id="u-senior_radiologist",
                            at=AT + timedelta(days=1), recall_reason="findings corrected"))
    with Session(get_engine()) as s:
        checks = verify_accession(s, ACC, get_settings().signature_keys)
        assert [(c.version, c.status, c.version_status, c.supersedes_version) for c in checks] == [
            (1, "intact", "recalled", None), (2, "intact", "valid", 1)]
        assert checks[0].signer_role == "senior_radiologist" and checks[1].signed_at == "2026-03-03T10:00:00.000000Z"
        records = _sign_records(s)
        assert [(r.object_id, r.detail["version"], r.outcome, r.role) for r in records] == [
            (ACC, 1, "success", "senior_radiologist"), (ACC, 2, "success", "senior_radiologist")]
        assert records[1].detail["content_digest"] == checks[1].signed_digest
        assert records[1].detail["supersedes_version"] == 1
        assert verify_chain(s, get_settings().audit_checkpoint_keys).ok


def test_a_failed_signature_is_audited_as_a_failure(database: str) -> None:
    with pytest.raises(SignatureError, match="no report version 5"):
        sign_report(SignRequest(accession_number=ACC, version=5, signer_id="u-senior_radiologist", at=AT))
    with Session(get_engine()) as s:
        (record,) = _sign_records(s)
        assert record.outcome == "failure" and "no report version 5" in record.detail["error"]
