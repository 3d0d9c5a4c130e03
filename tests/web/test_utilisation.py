"""Device utilisation (R9.1.3): minutes examining over minutes open, per room and local day,
overlaps merged; on the dashboard as SVG and CSV."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import httpx
from sqlmodel import Session

from api.main import create_app
from core.db import get_engine
from domain.booking_tables import RoomSegment
from domain.enums import Role
from domain.tables import ExamRecord, Room, WorklistEntry
from tests.web.test_pages import log_in_as
from web.utilisation import by_room, by_room_day, merged_minutes

UTC = timezone.utc


def at(h: int, m: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, h, m, tzinfo=UTC)


def test_overlaps_are_counted_once() -> None:
    assert merged_minutes([(at(1), at(2)), (at(1, 30), at(2, 30)), (at(3), at(3, 10)), (at(4), at(4))]) == 100


def test_per_room_and_local_day_with_and_without_opening_hours() -> None:
    exams = [("CT1", at(1), at(1, 30)), ("CT1", at(2), at(2, 15)),
             ("CT1", at(17), at(17, 30)),  # 01:00 next day in Shanghai
             ("MR1", at(3), at(4))]        # no opening hours that day
    openings = [("CT1", at(0), at(4)), ("CT1", at(4), at(5))]
    days = by_room_day(exams, openings, "Asia/Shanghai")
    got = [(d.room_id, d.day.day, d.exams, d.busy_minutes, d.open_minutes, d.rate) for d in days]
    assert got == [("CT1", 2, 2, 45.0, 300.0, 0.15), ("CT1", 3, 1, 30.0, 0.0, None), ("MR1", 2, 1, 60.0, 0.0, None)]
    ct, mr = by_room(days)
    assert (ct.exams, ct.busy_minutes, ct.open_minutes, ct.rate) == (3, 75.0, 300.0, 0.15)  # the day without hours is not in the rate
    assert mr.rate is None


async def test_dashboard_chart_and_csv(sqlite_database) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    with Session(get_engine()) as s:
        s.add(Room(id="XR9", name="测试室", campus="main", modalities="CT", station_ae_title="XR9"))
        s.flush()
        s.add(RoomSegment(room_id="XR9", start_at=start, end_at=start + timedelta(minutes=60), device_capacity=2, staff_capacity=2))
        s.add(WorklistEntry(id="SPS-U1", accession_number="U1", patient_id="p", modality="CT", station_ae_title="XR9",
                            room_id="XR9", scheduled_start=start, procedure_code="CT-CHEST", procedure_name="CT",
                            study_instance_uid="1.2.3", status="completed"))
        s.add(ExamRecord(accession_number="U1", attempt=1, started_at=start + timedelta(minutes=10),
                         completed_at=start + timedelta(minutes=40)))
        s.commit()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://radloop.test") as c:
        await log_in_as(c, Role.manager)
        r = await c.get("/web/dashboard")
        assert r.status_code == 200
        chart = r.text.split('id="chart-utilisation"')[1].split("</section>")[0]
        assert "<svg" in chart and "测试室" in chart and "50.0%" in chart
        r = await c.get("/web/dashboard/utilisation.csv?days=2")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["room_id"] == "XR9"]
        assert [(x["exams"], x["busy_minutes"], x["open_minutes"], x["utilisation"]) for x in rows] == [("1", "30.0", "60.0", "0.500")]
