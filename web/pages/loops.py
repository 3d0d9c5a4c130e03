"""One exam loop on one page: its timeline, report versions with the diff to the previous one,
each critical value with its ladder attempts, and a link to the workflow in Temporal UI.

The URL carries the accession number only (not patient data here); the title too. Report
text is shown only to roles that may read reports (`report_read`); the page itself is
`loop_read`, need-to-know scoped for clinicians like the API's loop routes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import col, select

from api.deps import TemporalConnectorDep, in_thread, patient_scope, require
from api.errors import TemporalUnavailable
from api.routes.loops import DIFF_FIELDS, FieldDiff, field_diff
from api.timeline import build_timeline, temporal_ui_url
from core.db import session_scope
from domain.tables import CriticalValue, ExamOrder, NotificationAttempt, Patient, ReportVersion, User
from security.permissions import Permission, allows
from services.errors import NotFound
from web.inbox import age_on, elderly_age_now, special_flags
from web.render import page
from web.route import PageRoute

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)
LoopReader = Annotated[User, Depends(require(Permission.loop_read))]


@dataclass
class VersionView:
    version: ReportVersion
    diffs: list[FieldDiff]  # against the previous version; changed fields only


@dataclass
class CriticalView:
    value: CriticalValue
    attempts: list[NotificationAttempt]
    temporal_url: str


def _rows(accession: str, with_reports: bool):
    with session_scope() as s:
        order = s.get(ExamOrder, accession)
        if order is None:
            raise NotFound(f"no order with accession number {accession}")
        patient = s.get(Patient, order.patient_id)
        versions: list[VersionView] = []
        if with_reports:
            previous = None
            for v in s.exec(select(ReportVersion).where(ReportVersion.accession_number == accession)
                            .order_by(col(ReportVersion.version))).all():
                diffs = [] if previous is None else [
                    d for f in DIFF_FIELDS
                    if (d := field_diff(f, getattr(previous, f), getattr(v, f), previous.version, v.version)).changed]
                versions.append(VersionView(v, diffs))
                previous = v
        criticals = []
        for cv in s.exec(select(CriticalValue).where(CriticalValue.accession_number == accession)
                         .order_by(col(CriticalValue.raised_at))).all():
            attempts = list(s.exec(select(NotificationAttempt).where(NotificationAttempt.critical_value_id == cv.id)
                                   .order_by(col(NotificationAttempt.attempted_at), col(NotificationAttempt.id))).all())
            criticals.append(CriticalView(cv, attempts, temporal_ui_url(cv.id)))
        return order, patient, versions, criticals


@router.get("/loops/{accession}", dependencies=[Depends(patient_scope)])
async def loop_page(accession: str, user: LoopReader, request: Request, connector: TemporalConnectorDep) -> Response:
    with_reports = allows(user.role, Permission.report_read)
    order, patient, versions, criticals = await in_thread(_rows, accession, with_reports)
    try:
        client = await connector.get()
    except TemporalUnavailable:
        client = None
    timeline = await build_timeline(client, accession)
    age = age_on(patient.birth_date, date.today()) if patient else None
    return page(request, "loop.html", user=user, order=order, patient=patient, age=age,
                flags=special_flags(order, age, await in_thread(elderly_age_now)), timeline=timeline, versions=versions, criticals=criticals,
                with_reports=with_reports)
