"""Room calendars, their segments, closures and booking rule versions (R5.3.1, R5.3.4).

Segments are materialised ahead (`open_segments`) rather than computed per request,
because the capacity counters a booking takes live on the segment row. Opening is
idempotent (insert-if-missing), so a daily job and the booking path may both call it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from domain.booking.calendar import CalendarTemplate, Closure, RoomView, default_template, segments_for_day
from domain.booking.defaults import DEFAULT_RULES
from domain.booking.rules import BookingRules
from domain.booking_tables import BookingRulesVersion, RoomCalendar, RoomClosure, RoomSegment
from domain.scheduling import as_utc
from domain.tables import Room
from services.errors import Invalid, NotFound

# Parsed versions, by (database, version): versions are immutable, so an entry never goes stale.
_RULES_CACHE: dict[tuple[str, int], BookingRules] = {}
# (database, last local day) pairs known to be open, so the booking path skips the check.
_OPEN_UP_TO: set[tuple[str, datetime]] = set()


def dialect_insert(session: Session, table):
    """INSERT with ON CONFLICT support for the session's database (SQLite or PostgreSQL)."""
    return (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)


# ---- rules -----------------------------------------------------------------------------------

def active_rules(session: Session) -> BookingRules:
    """The newest published version, else the built-in version 1 (parsed once per version)."""
    newest = session.exec(select(func.max(BookingRulesVersion.version))).one()
    if newest is None:
        return DEFAULT_RULES
    key = (str(session.get_bind().url), newest)
    if key not in _RULES_CACHE:
        row = session.get(BookingRulesVersion, newest)
        _RULES_CACHE[key] = BookingRules.model_validate({**row.body, "version": newest})
    return _RULES_CACHE[key]


def publish_rules(session: Session, rules: BookingRules, actor: str, note: str = "") -> BookingRules:
    """Store `rules` as the next version (versions are never edited, only superseded)."""
    newest = session.exec(select(func.max(BookingRulesVersion.version))).one() or DEFAULT_RULES.version
    published = rules.model_copy(update={"version": newest + 1})
    session.add(BookingRulesVersion(version=published.version, body=published.model_dump(mode="json"),
                                    note=note, created_by=actor))
    session.flush()
    return published


# ---- calendars and segments ------------------------------------------------------------------

def set_room_calendar(session: Session, room_id: str, template: CalendarTemplate, actor: str) -> None:
    if session.get(Room, room_id) is None:
        raise NotFound(f"no room {room_id}")
    row = session.get(RoomCalendar, room_id) or RoomCalendar(room_id=room_id, template={})
    row.template, row.updated_by = template.model_dump(mode="json"), actor
    session.add(row)
    session.flush()


def calendars(session: Session, room_ids: Iterable[str] | None = None) -> dict[str, CalendarTemplate]:
    """Each room's template; a room without one gets the default (so a new room is bookable)."""
    rooms = session.exec(select(Room.id)).all() if room_ids is None else list(room_ids)
    stored = {r.room_id: CalendarTemplate.model_validate(r.template)
              for r in session.exec(select(RoomCalendar).where(col(RoomCalendar.room_id).in_(rooms)))}
    return {rid: stored.get(rid) or default_template() for rid in rooms}


def open_segments(session: Session, first_day: date, days: int, tz: str,
                  room_ids: Sequence[str] | None = None) -> int:
    """Create the missing segments of `days` local days from `first_day`; returns how many."""
    rows = [
        {"room_id": rid, "start_at": s.start, "end_at": s.end, "device_capacity": s.device_capacity,
         "staff_capacity": s.staff_capacity, "reserve_units": s.reserve_units, "device_used": 0, "staff_used": 0}
        for rid, template in calendars(session, room_ids).items()
        for d in range(days)
        for s in segments_for_day(template, first_day + timedelta(days=d), tz)
    ]
    if not rows:
        return 0
    created = 0
    for i in range(0, len(rows), 500):
        stmt = dialect_insert(session, RoomSegment).values(rows[i:i + 500]).on_conflict_do_nothing(
            index_elements=["room_id", "start_at"])
        created += session.execute(stmt).rowcount or 0
    session.flush()
    return created


def ensure_window(session: Session, now: datetime, rules: BookingRules) -> None:
    """Open segments up to the longest booking window when the last day is not open yet."""
    zone = ZoneInfo(rules.timezone)
    days = max([p.window_days for p in rules.patient_types.values()] + [14]) + 1
    today = now.astimezone(zone).date()
    last = datetime.combine(today + timedelta(days=days - 1), datetime.min.time(), zone)
    key = (str(session.get_bind().url), last)
    if key in _OPEN_UP_TO:  # segments are never deleted: once open, a day stays open
        return
    if session.exec(select(RoomSegment.id).where(RoomSegment.start_at >= last).limit(1)).first() is None:
        open_segments(session, today, days, rules.timezone)
    else:
        _OPEN_UP_TO.add(key)


def room_views(session: Session) -> dict[str, RoomView]:
    """Rooms as the search sees them (read per booking, so only the exam codes of each
    stored template are taken, without validating the whole template again). One query;
    it also leaves the Room rows in the session, so writing a booking reads no room again."""
    rows = session.exec(select(Room, RoomCalendar.template).outerjoin(
        RoomCalendar, RoomCalendar.room_id == Room.id)).all()
    # The identity map holds rows weakly: keep them referenced for the session's life.
    session.info["rooms"] = [room for room, _ in rows]
    views = {}
    for room, tmpl in rows:
        codes = tmpl.get("exam_codes") if tmpl else None
        views[room.id] = RoomView(id=room.id, campus=room.campus, modalities=frozenset(room.modalities.split()),
                                  exam_codes=frozenset(codes) if codes is not None else None)
    return views


# ---- closures --------------------------------------------------------------------------------

def add_closure(session: Session, room_id: str, start: datetime, end: datetime, reason: str, actor: str) -> RoomClosure:
    if end <= start:
        raise Invalid("a closure ends after it starts")
    if session.get(Room, room_id) is None:
        raise NotFound(f"no room {room_id}")
    row = RoomClosure(room_id=room_id, start_at=start, end_at=end, reason=reason, created_by=actor)
    session.add(row)
    session.flush()
    return row


def closures_between(session: Session, start: datetime, end: datetime) -> list[Closure]:
    rows = session.exec(select(RoomClosure).where(RoomClosure.end_at > start, RoomClosure.start_at < end))
    return [Closure(r.room_id, as_utc(r.start_at), as_utc(r.end_at), r.reason) for r in rows]
