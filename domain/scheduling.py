"""Slot arithmetic for the earliest-slot rule (R6.1.5): pure, timezone-aware."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo


def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; RadLoop stores UTC everywhere."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def candidate_starts(
    not_before: datetime, *, slot_minutes: int, day_start_hour: int, day_end_hour: int,
    horizon_days: int, tz: str,
) -> Iterator[datetime]:
    """Slot starts in opening hours (local time), from `not_before` on, in UTC."""
    zone = ZoneInfo(tz)
    local = as_utc(not_before).astimezone(zone)
    step = timedelta(minutes=slot_minutes)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range(horizon_days + 1):
        base = (day + timedelta(days=d)).replace(tzinfo=None)
        t = base.replace(hour=day_start_hour)
        end = base.replace(hour=day_end_hour)
        while t + step <= end:
            aware = t.replace(tzinfo=zone)
            if aware >= local:
                yield aware.astimezone(timezone.utc)
            t += step


def study_instance_uid(accession_number: str) -> str:
    """A stable UID per accession (2.25 + UUIDv5), so retries and re-exams agree."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, f"radloop:study:{accession_number}").int)
