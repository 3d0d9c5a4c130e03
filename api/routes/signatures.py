"""Report signatures, verified (R10.2.4, R8.3.1): is a signed report still exactly what was signed?

Signing happens in the loop (the senior's review step, `activities.reports.sign_report`);
these routes only verify. Each verification is a signature operation and is
audited with its result (`request.state.audit_detail`, read by api.audit).
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from sqlmodel import Session

from api.deps import SessionDep, patient_scope, require
from api.errors import ErrorBody
from core.config import get_settings
from domain.tables import ExamOrder, User
from security.permissions import Permission
from security.signatures import SignatureCheck, verify_accession, verify_version
from services.errors import NotFound

router = APIRouter(prefix="/api/v1/loops", tags=["signatures"], dependencies=[Depends(patient_scope)])

Verifier = Annotated[User, Depends(require(Permission.report_signature_verify))]


def _order(session: Session, accession: str) -> None:
    if session.get(ExamOrder, accession) is None:
        raise NotFound(f"no order with accession number {accession}")


@router.get("/{accession}/reports/{version}/signature", response_model=SignatureCheck,
            responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}})
def verify_report_signature(
    accession: str, version: Annotated[int, Path(ge=1)], request: Request, _user: Verifier, session: SessionDep,
) -> SignatureCheck:
    """Who signed this version and when, and whether its content or its signature changed since.

    status: `intact`, `content_changed` (the report text differs from what was signed),
    `signature_altered` (the signature record itself was changed), `signature_missing` (the
    version was signed, as its own row and the later signatures say, but its signature record
    was deleted) or `unsigned`.
    """
    _order(session, accession)
    check = verify_version(session, accession, version, get_settings().signature_keys)
    if check is None:
        raise NotFound(f"accession {accession} has no report version {version}")
    request.state.audit_detail = {"version": version, "signature": check.status}
    return check


@router.get("/{accession}/signatures", response_model=list[SignatureCheck],
            responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}})
def verify_report_signatures(accession: str, request: Request, _user: Verifier, session: SessionDep) -> list[SignatureCheck]:
    """Every signed version of the exam's report, oldest first: signatures and re-signatures after correction."""
    _order(session, accession)
    checks = verify_accession(session, accession, get_settings().signature_keys)
    request.state.audit_detail = {"signatures": {str(c.version): c.status for c in checks}}
    return checks
