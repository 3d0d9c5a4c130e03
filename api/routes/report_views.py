"""A report version rendered for reading or printing (HTML, PDF), watermarked with viewer and time (R10.3.4 (5)).

The page shows the signature and whether the text is still what was signed
(security.signatures), the patient's name as the viewer's role may see it
(security.masking), and the watermark (security.watermark). The audit record of
the view carries the watermark label, so a leaked printout leads to its viewing.
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from api.deps import SessionDep, get_clock, patient_scope, require
from api.errors import ErrorBody
from api.pages import render
from api.report_pdf import render_pdf
from core.config import get_settings
from domain.tables import ExamOrder, Patient, ReportVersion, User
from security.masking import mask_patient_data
from security.permissions import Permission
from security.signatures import verify_version
from security.watermark import watermark_html, watermark_label
from services.errors import NotFound

router = APIRouter(prefix="/api/v1/loops", tags=["reports"], dependencies=[Depends(patient_scope)])

ReportReader = Annotated[User, Depends(require(Permission.report_read))]


@router.get(
    "/{accession}/reports/{version}/rendered",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}, "description": "The watermarked report"},
               403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
def rendered_report(
    accession: str, version: Annotated[int, Path(ge=1)], request: Request, user: ReportReader, session: SessionDep,
    format: Annotated[Literal["html", "pdf"], Query(description="html (default) or pdf")] = "html",
) -> Response:
    """The report version as a page or a PDF, watermarked with the viewer's ID and the time of viewing."""
    order = session.get(ExamOrder, accession)
    if order is None:
        raise NotFound(f"no order with accession number {accession}")
    report = session.exec(select(ReportVersion).where(
        ReportVersion.accession_number == accession, ReportVersion.version == version)).first()
    if report is None:
        raise NotFound(f"accession {accession} has no report version {version}")
    settings = get_settings()
    patient = session.get(Patient, order.patient_id)
    name = mask_patient_data({"patient_name": patient.name if patient else ""}, user.role)["patient_name"]
    check = verify_version(session, accession, version, settings.signature_keys)
    label = watermark_label(user.id, get_clock(request).now(), settings.timezone)
    request.state.audit_detail = {"version": version, "rendered": format, "watermark": label}
    if format == "pdf":
        blocks = [
            ("影像诊断报告 / Imaging report", 16),
            (f"检查号 {accession}  患者 {name}  {order.procedure_name} ({order.modality})", 10),
            (f"版本 v{report.version} · {report.tier} · {report.status}", 10),
            ("所见 / Findings", 12), (report.findings, 11), ("印象 / Impression", 12), (report.impression, 11),
            *([("建议 / Recommendation", 12), (report.recommendation, 11)] if report.recommendation else []),
            (f"签名 / Signed by {check.signer_id} · {check.signed_at} · {check.message}"
             if check and check.status != "unsigned" else "未签名 / Not signed", 9),
        ]
        return Response(render_pdf(blocks, label), media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{accession}-v{version}.pdf"',
                                 "Cache-Control": "no-store"})
    page = render("signed_report.html", order=order, report=report, patient_name=name, check=check)
    return HTMLResponse(watermark_html(page, label), headers={"Cache-Control": "no-store"})
