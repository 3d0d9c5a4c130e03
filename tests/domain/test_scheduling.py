"""Slot arithmetic: opening hours in local time, stored in UTC."""
from __future__ import annotations

from datetime import datetime, timezone
from itertools import islice

from domain.scheduling import as_utc, candidate_starts, study_instance_uid


def starts(not_before: datetime, n: int = 3) -> list[datetime]:
    return list(islice(candidate_starts(not_before, slot_minutes=15, day_start_hour=8, day_end_hour=18,
                                        horizon_days=2, tz="Asia/Shanghai"), n))


def test_before_opening_the_first_slot_is_8_local() -> None:
    # 2026-11-27 22:00 UTC = 2026-11-28 06:00 in Shanghai
    assert starts(datetime(2026, 11, 27, 22, 0, tzinfo=timezone.utc))[0] == datetime(2026, 11, 28, 0, 0, tzinfo=timezone.utc)


def test_mid_day_rounds_up_to_the_next_slot() -> None:
    got = starts(datetime(2026, 11, 28, 2, 7, tzinfo=timezone.utc))  # 10:07 local
    assert [g.strftime("%H:%M") for g in got] == ["02:15", "02:30", "02:45"]


def test_after_closing_moves_to_the_next_day() -> None:
    got = starts(datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc))  # 18:00 local
    assert got[0] == datetime(2026, 11, 29, 0, 0, tzinfo=timezone.utc)


def test_last_slot_ends_at_closing() -> None:
    all_day = list(candidate_starts(datetime(2026, 11, 28, 0, 0, tzinfo=timezone.utc), slot_minutes=15,
                                    day_start_hour=8, day_end_hour=18, horizon_days=0, tz="Asia/Shanghai"))
    assert len(all_day) == 40 and all_day[-1].strftime("%H:%M") == "09:45"


def test_naive_datetimes_are_utc_and_study_uids_are_stable() -> None:
    assert as_utc(datetime(2026, 1, 1, 8)).tzinfo == timezone.utc
    uid = study_instance_uid("A2026112700001")
    assert uid == study_instance_uid("A2026112700001") != study_instance_uid("A2026112700002")
    assert uid.startswith("2.25.") and len(uid) <= 64
