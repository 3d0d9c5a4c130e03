"""The manager dashboard (R8.7, R9.1.3, R4.4.4): critical values notified within 10 minutes (rate
and weekly trend), report turnaround by tier, order-QC and image-QC rejects, device utilisation
per room; SVG drawn on the server, every table also as CSV."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlmodel import col, func, select

from api.deps import in_thread, require
from api.routes.critical_values import _facts
from core.config import get_settings
from core.db import session_scope
from domain.charts import weekly_compliance_svg
from domain.critical_metrics import compute
from domain.enums import TaskType
from domain.booking_tables import RoomSegment
from domain.tables import ExamOrder, ExamRecord, HumanTask, ImageQCGrade, ReportVersion, Room, User, WorklistEntry
from security.permissions import Permission
from web import i18n
from web.charts import bars_svg
from web.metrics import TIERS, ReportTimes, qc_rejects, turnaround_by_tier
from web.render import page
from web.utilisation import RoomDay, by_room, by_room_day
from web.route import PageRoute

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)
Office = Annotated[User, Depends(require(Permission.quality_metrics_read))]
Days = Annotated[int, Query(ge=1, le=366, description="Look back this many days")]


def _since(days: int) -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=days)


def report_times(since: datetime) -> list[ReportTimes]:
    with session_scope() as s:
        done: dict[str, datetime] = {}
        for acc, at in s.exec(select(ExamRecord.accession_number, ExamRecord.completed_at)
                              .where(col(ExamRecord.completed_at).is_not(None), col(ExamRecord.completed_at) >= since)):
            done[acc] = max(done.get(acc, at), at)  # a re-exam restarts the clock
        tiers: dict[str, dict[str, datetime]] = {}
        if done:
            for v in s.exec(select(ReportVersion).where(col(ReportVersion.accession_number).in_(list(done)))
                            .order_by(col(ReportVersion.version))):
                at = v.signed_at if v.tier == "final" and v.signed_at else v.created_at
                tiers.setdefault(v.accession_number, {}).setdefault(v.tier, at)
        return [ReportTimes(acc, at, tiers.get(acc, {})) for acc, at in sorted(done.items())]


def _qc(since: datetime):
    with session_scope() as s:
        orders = s.exec(select(func.count()).select_from(ExamOrder).where(col(ExamOrder.created_at) >= since)).one()
        fixes = s.exec(select(func.count()).select_from(HumanTask).where(
            HumanTask.task_type == TaskType.order_fix.value, col(HumanTask.created_at) >= since)).one()
        grades = list(s.exec(select(ImageQCGrade.grade).where(col(ImageQCGrade.graded_at) >= since)).all())
        return qc_rejects(orders, fixes, grades)


def room_days(since: datetime) -> tuple[list[RoomDay], dict[str, str]]:
    """Exams with both times, in the room of their worklist entry; segments that have begun."""
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        names = {r.id: r.name for r in s.exec(select(Room))}
        seen: set[int] = set()
        exams = []
        for exam_id, room, start, end in s.exec(
                select(ExamRecord.id, WorklistEntry.room_id, ExamRecord.started_at, ExamRecord.completed_at)
                .join(WorklistEntry, col(WorklistEntry.accession_number) == col(ExamRecord.accession_number))
                .where(col(ExamRecord.started_at) >= since, col(ExamRecord.completed_at).is_not(None),
                       WorklistEntry.status != "withdrawn")):
            if exam_id not in seen:  # one row per exam even with several worklist entries
                seen.add(exam_id)
                exams.append((room, start, end))
        openings = list(s.exec(select(RoomSegment.room_id, RoomSegment.start_at, RoomSegment.end_at)
                               .where(col(RoomSegment.start_at) >= since, col(RoomSegment.start_at) <= now)).all())
    return by_room_day(exams, openings, get_settings().timezone), names


@router.get("/dashboard")
async def dashboard(user: Office, request: Request, days: Days = 56) -> Response:
    lang = i18n.language_of(request)
    t = lambda key: i18n.translate(lang, key)  # noqa: E731
    since = _since(days)
    metrics = compute(await in_thread(_facts, since, None), datetime.now(timezone.utc))
    trend = weekly_compliance_svg([w.week_start for w in metrics.weekly], [w.notified_within_10_rate for w in metrics.weekly],
                                  [w.ack_p50_seconds for w in metrics.weekly], t("dash.critical_trend"))
    tat = turnaround_by_tier(await in_thread(report_times, since))
    tat_svg = bars_svg(t("dash.turnaround"), [t(f"tier.{x.tier}") for x in tat],
                       [("p50", "#2980b9", [x.p50_minutes for x in tat]), ("p90", "#8e44ad", [x.p90_minutes for x in tat])],
                       t("unit.minutes"))
    qc = await in_thread(_qc, since)
    qc_svg = bars_svg(t("dash.image_grades"), list("ABCD"),
                      [(t("dash.exams"), "#16a085", [float(qc.grades[g]) for g in "ABCD"])], t("unit.count"))
    per_day, names = await in_thread(room_days, since)
    rooms = by_room(per_day)
    util_svg = bars_svg(t("dash.utilisation"), [names.get(r.room_id, r.room_id) for r in rooms],
                        [(t("dash.busy_share"), "#d35400", [None if r.rate is None else r.rate * 100 for r in rooms])], "%")
    return page(request, "dashboard.html", user=user, days=days, m=metrics, trend_svg=trend, tat=tat,
                tat_svg=tat_svg, qc=qc, qc_svg=qc_svg, rooms=rooms, room_names=names, util_svg=util_svg)


def _csv(rows: list[list[object]], name: str) -> Response:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/dashboard/turnaround.csv")
async def turnaround_csv(user: Office, days: Days = 56) -> Response:
    """One row per exam: completion and each tier's time, and minutes from completion."""
    exams = await in_thread(report_times, _since(days))
    header = ["accession_number", "exam_completed_at", *[f"{t}_at" for t in TIERS], *[f"{t}_minutes" for t in TIERS]]
    rows: list[list[object]] = [header]
    for e in exams:
        mins = [e.minutes(t) for t in TIERS]
        rows.append([e.accession_number, e.exam_completed_at.isoformat(),
                     *[e.tiers[t].isoformat() if t in e.tiers else "" for t in TIERS],
                     *["" if m is None else f"{m:.1f}" for m in mins]])
    return _csv(rows, "report-turnaround.csv")


def _grades(since: datetime) -> list[ImageQCGrade]:
    with session_scope() as s:
        return list(s.exec(select(ImageQCGrade).where(col(ImageQCGrade.graded_at) >= since)
                           .order_by(col(ImageQCGrade.graded_at))).all())


@router.get("/dashboard/image-qc.csv")
async def image_qc_csv(user: Office, days: Days = 56) -> Response:
    rows: list[list[object]] = [["accession_number", "attempt", "grade", "graded_by", "graded_at"]]
    rows += [[g.accession_number, g.attempt, g.grade, g.graded_by, g.graded_at.isoformat()]
             for g in await in_thread(_grades, _since(days))]
    return _csv(rows, "image-qc.csv")


@router.get("/dashboard/utilisation.csv")
async def utilisation_csv(user: Office, days: Days = 56) -> Response:
    """One row per room and day: exams, minutes examining, minutes open, and their ratio."""
    per_day, names = await in_thread(room_days, _since(days))
    rows: list[list[object]] = [["room_id", "room_name", "day", "exams", "busy_minutes", "open_minutes", "utilisation"]]
    rows += [[d.room_id, names.get(d.room_id, ""), d.day.isoformat(), d.exams, f"{d.busy_minutes:.1f}",
              f"{d.open_minutes:.1f}", "" if d.rate is None else f"{d.rate:.3f}"] for d in per_day]
    return _csv(rows, "device-utilisation.csv")
