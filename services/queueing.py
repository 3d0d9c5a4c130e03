"""Queue calling against the database (R6.2.2, R6.3): join, call modes, boards, daily close.

Each action reads the tickets it needs, asks `domain.queueing.calling` what the action
does, and writes it with a conditional UPDATE on the state and call count it read. If
another terminal changed the ticket meanwhile, no row matches: `call_next` takes the next
patient, the other actions answer 409 with the reason. Every change writes a `queue_call`
row; the displays' feed watches that log.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from core.config import get_settings
from core.db import get_engine
from domain.queue_tables import QueueCall, QueueDefinition, QueueTicket
from domain.queueing import calling
from domain.queueing.calling import BoardLine, Item, QueueDef, QueueRefusal
from domain.queueing.policy import DEFAULT_POLICY, PatientTraits
from domain.tables import utcnow
from services.errors import Conflict, NotFound

ATTEMPTS = 5
NO_SYNC = {"synchronize_session": False}


class TicketOut(BaseModel):
    id: str
    accession_number: str
    queue_id: str
    state: str
    room_id: str | None
    tier: int
    tier_reason: str
    calls: int
    position: int | None = None


def _def(row: QueueDefinition) -> QueueDef:
    return QueueDef(row.id, row.name, frozenset(row.rooms), row.stage)


def _item(t: QueueTicket) -> Item:
    return Item(id=t.id, accession_number=t.accession_number, patient_name=t.patient_name, queue_id=t.queue_id,
                tier=t.tier, seq=t.seq, state=t.state, room_id=t.room_id, calls=t.calls, tier_reason=t.tier_reason)


def _out(t: QueueTicket | Item) -> TicketOut:
    return TicketOut(id=t.id, accession_number=t.accession_number, queue_id=t.queue_id, state=t.state,
                     room_id=t.room_id, tier=t.tier, tier_reason=t.tier_reason, calls=t.calls)


def define_queue(session: Session, queue_id: str, name: str, rooms: list[str], stage: str = "exam") -> None:
    row = session.get(QueueDefinition, queue_id) or QueueDefinition(id=queue_id, name=name, rooms=rooms)
    row.name, row.rooms, row.stage, row.active = name, rooms, stage, True
    session.add(row)
    session.flush()


def _queues(session: Session) -> list[QueueDef]:
    return [_def(q) for q in session.exec(select(QueueDefinition).where(QueueDefinition.active == True))]  # noqa: E712


def _log(session: Session, call: calling.Call, actor: str) -> None:
    session.add(QueueCall(ticket_id=call.item_id, queue_id=call.queue_id, room_id=call.room_id, mode=call.mode,
                          detail=call.detail, actor=actor))


def join(accession_number: str, patient_name: str, queue_id: str, traits: PatientTraits, actor: str) -> TicketOut:
    """Check-in puts the patient on a queue, in the tier the care policy gives them."""
    with Session(get_engine(), expire_on_commit=False) as s:
        if s.get(QueueDefinition, queue_id) is None:
            raise NotFound(f"no queue {queue_id}")
        live = s.exec(select(QueueTicket).where(QueueTicket.live_accession == accession_number)).first()
        if live is not None:
            return _out(live)
        rank, reason = DEFAULT_POLICY.tier(traits)
        now = utcnow()
        t = QueueTicket(id=f"qt-{uuid.uuid4().hex[:16]}", accession_number=accession_number,
                        live_accession=accession_number, patient_name=patient_name, queue_id=queue_id, tier=rank,
                        tier_reason=reason, seq=now.timestamp(), joined_at=now, updated_at=now)
        s.add(t)
        s.add(QueueCall(ticket_id=t.id, queue_id=queue_id, mode="join", detail=reason, actor=actor))
        s.commit()
        return _out(t)


def _write(session: Session, old: Item, new: Item) -> bool:
    """The conditional UPDATE: only if the ticket is still as it was read."""
    q = QueueTicket
    finished = new.state in ("done", "left")
    values = dict(state=new.state, room_id=new.room_id, calls=new.calls, seq=new.seq, queue_id=new.queue_id,
                  updated_at=utcnow())
    if finished:
        values["live_accession"] = None
    res = session.execute(update(q).where(q.id == old.id, q.state == old.state, q.calls == old.calls, q.seq == old.seq)
                          .values(**values), execution_options=NO_SYNC)
    return res.rowcount == 1


def call_next(room_id: str, actor: str) -> TicketOut:
    """The head of the room's queues (care tiers, then arrival); a patient another terminal
    just called is passed over, never called twice."""
    for _ in range(ATTEMPTS):
        with Session(get_engine(), expire_on_commit=False) as s:
            queues = _queues(s)
            ids = [q.id for q in calling.queues_of_room(room_id, queues)]
            items = [_item(t) for t in s.exec(select(QueueTicket).where(
                col(QueueTicket.queue_id).in_(ids), QueueTicket.state == "waiting"))]
            try:
                new, call = calling.call_next(items, room_id, queues)
            except QueueRefusal as err:
                raise Conflict(str(err)) from err
            old = next(i for i in items if i.id == new.id)
            if _write(s, old, new):
                _log(s, call, actor)
                s.commit()
                return _out(new)
    raise Conflict("the queue kept changing; press next again")


def act(ticket_id: str, mode: str, actor: str, *, room_id: str | None = None, back: int | None = None,
        to_queue: str | None = None) -> TicketOut:
    """recall | skip | select | transfer | finish | leave on one ticket."""
    with Session(get_engine(), expire_on_commit=False) as s:
        row = s.get(QueueTicket, ticket_id)
        if row is None:
            raise NotFound(f"no queue ticket {ticket_id}")
        old = _item(row)
        queues = _queues(s)
        try:
            if mode == "recall":
                new, call = calling.recall(old)
            elif mode == "skip":
                same = [_item(t) for t in s.exec(select(QueueTicket).where(
                    QueueTicket.queue_id == old.queue_id, QueueTicket.state == "waiting"))]
                new, call = calling.skip([*same, old], old, back)
            elif mode == "select":
                new, call = calling.call_selected(old, room_id or "", queues)
            elif mode == "transfer":
                target = next((q for q in queues if q.id == to_queue), None)
                if target is None:
                    raise NotFound(f"no queue {to_queue}")
                new, call = calling.transfer(old, target)
            elif mode in ("finish", "leave"):
                new, call = calling.finish(old, left=mode == "leave")
            else:
                raise NotFound(f"no call mode {mode}")
        except QueueRefusal as err:
            raise Conflict(str(err)) from err
        if not _write(s, old, new):
            raise Conflict("another terminal changed this patient a moment ago; refresh")
        _log(s, call, actor)
        s.commit()
        return _out(new)


def board(room_id: str) -> BoardLine:
    with Session(get_engine()) as s:
        queues = _queues(s)
        ids = [q.id for q in calling.queues_of_room(room_id, queues)]
        items = [_item(t) for t in s.exec(select(QueueTicket).where(
            col(QueueTicket.queue_id).in_(ids) | ((QueueTicket.room_id == room_id) & (QueueTicket.state == "called")),
            col(QueueTicket.state).in_(["waiting", "called"])))]
        return calling.board(items, room_id, queues)


def last_change() -> int:
    """The newest call-log row: the displays' feed sends boards again when it moves."""
    with Session(get_engine()) as s:
        return s.exec(select(func.max(QueueCall.id))).one() or 0


def unfinished(day: date) -> list[TicketOut]:
    """Daily close (R6.3): patients who joined on `day` and are neither done nor marked left."""
    zone = ZoneInfo(get_settings().timezone)
    start = datetime.combine(day, time.min, zone).astimezone(timezone.utc)
    with Session(get_engine()) as s:
        rows = s.exec(select(QueueTicket).where(
            QueueTicket.joined_at >= start, QueueTicket.joined_at < start + timedelta(days=1),
            col(QueueTicket.state).in_(["waiting", "called"])).order_by(QueueTicket.joined_at))
        return [_out(t) for t in rows]
