"""C-FIND matching rules (PS3.4 C.2.2.2) turned into SQL conditions.

Single value, wildcard (`*`, `?`), universal (empty or `*`) and range matching
(`a-b`, `-b`, `a-`) on DA/TM, plus the combined date-time matching of PS3.4
C.2.2.2.5.1 when both a date and a time range are given. DICOM dates and times
in the worklist are the center's local time (settings.timezone); rows keep UTC.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, false, func, or_

LIKE_ESCAPE = "\\"


def is_universal(value: Any) -> bool:
    return value is None or str(value).strip() in ("", "*")


def like_pattern(value: str) -> str | None:
    """`*`/`?` wildcards as a LIKE pattern (escaping % and _), or None for a plain value."""
    if "*" not in value and "?" not in value:
        return None
    out = []
    for ch in value:
        if ch in "%_\\":
            out.append(LIKE_ESCAPE + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def string_condition(column: Any, value: str, *, case_insensitive: bool = False) -> ColumnElement[bool]:
    """Single-value or wildcard match of one column; `\\`-separated values match any (list of UIDs)."""
    values = [v for v in value.split("\\")] if "\\" in value else [value]
    conds = []
    for v in values:
        pattern = like_pattern(v)
        col, v_ = (func.lower(column), v.lower()) if case_insensitive else (column, v)
        if pattern is None:
            conds.append(col == v_)
        else:
            conds.append(col.like(pattern.lower() if case_insensitive else pattern, escape=LIKE_ESCAPE))
    return conds[0] if len(conds) == 1 else or_(*conds)


def person_name_condition(column: Any, value: str) -> ColumnElement[bool]:
    """PN: case-insensitive wildcard match; with component groups (`Zhang^San=张三`) any group may match."""
    groups = [g for g in value.split("=") if g.strip()]
    if not groups:
        return ~false()
    conds = [string_condition(column, g, case_insensitive=True) for g in groups]
    return conds[0] if len(conds) == 1 else or_(*conds)


def split_range(value: str) -> tuple[str | None, str | None]:
    """`a-b` -> (a, b); `-b` -> (None, b); `a-` -> (a, None); `a` -> (a, a)."""
    value = value.strip()
    if "-" not in value:
        return value, value
    lo, _, hi = value.partition("-")
    return (lo.strip() or None), (hi.strip() or None)


def parse_da(value: str) -> date:
    return datetime.strptime(value.replace(".", "")[:8], "%Y%m%d").date()


def parse_tm(value: str, *, upper: bool = False) -> time:
    """Partial times (HH, HHMM, HHMMSS[.f]); an upper bound is the end of the given precision."""
    digits = value.split(".")[0]
    hh = int(digits[0:2])
    mm = int(digits[2:4]) if len(digits) >= 4 else (59 if upper else 0)
    ss = int(digits[4:6]) if len(digits) >= 6 else (59 if upper else 0)
    micro = 999999 if upper and "." not in value else int((value.split(".") + ["0"])[1].ljust(6, "0")[:6])
    return time(min(hh, 23), min(mm, 59), min(ss, 59), micro)


class DateTimeWindow:
    """A UTC [lo, hi] window from DA and TM keys, plus a time-of-day filter when only TM is given."""

    def __init__(self, date_value: str | None, time_value: str | None, tz: str) -> None:
        self.zone = ZoneInfo(tz)
        self.lo: datetime | None = None
        self.hi: datetime | None = None
        self.tod: tuple[time | None, time | None] | None = None
        t_lo = t_hi = None
        if not is_universal(time_value):
            lo_s, hi_s = split_range(str(time_value))
            t_lo = parse_tm(lo_s) if lo_s else None
            t_hi = parse_tm(hi_s, upper=True) if hi_s else None
        if is_universal(date_value):
            if t_lo or t_hi:
                self.tod = (t_lo, t_hi)
            return
        d_lo_s, d_hi_s = split_range(str(date_value))
        if d_lo_s:
            self.lo = self._utc(parse_da(d_lo_s), t_lo or time(0, 0))
        if d_hi_s:
            self.hi = self._utc(parse_da(d_hi_s), t_hi or time(23, 59, 59, 999999))

    def _utc(self, d: date, t: time) -> datetime:
        return datetime.combine(d, t, tzinfo=self.zone).astimezone(timezone.utc)

    def local(self, dt: datetime) -> datetime:
        aware = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt
        return aware.astimezone(self.zone)

    def conditions(self, column: Any) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.lo is not None:
            conds.append(column >= self.lo)
        if self.hi is not None:
            conds.append(column <= self.hi)
        return conds

    def time_of_day_ok(self, dt: datetime) -> bool:
        if self.tod is None:
            return True
        t = self.local(dt).time()
        lo, hi = self.tod
        return (lo is None or t >= lo) and (hi is None or t <= hi)


def da(dt: datetime, zone: ZoneInfo) -> str:
    return dt.astimezone(zone).strftime("%Y%m%d")


def tm(dt: datetime, zone: ZoneInfo) -> str:
    return dt.astimezone(zone).strftime("%H%M%S")


def utc_aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt

