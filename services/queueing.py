"""Queue calling against the database (R6.2.2, R6.3): join, call modes, boards, daily close.

Each action reads the tickets it needs, asks `domain.queueing.calling` what the action
does, and writes it with a conditional UPDATE on the state and call count it read. If
another terminal changed the ticket meanwhile, no row matches: `call_next` takes the next
patient, the other actions answer 409 with the reason. Every change writes a `queue_call`
row; the displays' feed watches that log.
"""
from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import apprise
from pydantic import BaseModel
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.config import get_settings
from core.db import get_engine
from domain.queue_tables import QueueCall, QueueDefinition, QueueTicket, QueueTicketItem, TriageDecision
from domain.queueing import calling, isolation
from activities.events import EventInput, write_event
from activities.notifications import redact, resolve_urls
from domain.queueing.calling import Aging, BoardLine, Item, QueueDef, QueueRefusal
from domain.queueing.policy import PatientTraits
from services.care_policy import current_policy
from domain.queueing.merging import ExamItem, verdict
from domain.tables import ExamOrder, NotificationAttempt, Patient, Room, WorklistEntry, utcnow
from services import triage
from services.triage import TriageOut
from services.booking_calendar import active_rules
from services.errors import Conflict, NotFound

log = logging.getLogger("radloop.queueing")

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


class EtaOut(BaseModel):
    ticket_id: str
    position: int
    minutes: float
    minutes_per_patient: float
    basis: str  # measured (today's call log) | configured


def _aging() -> Aging:
    return Aging(now=utcnow().timestamp(), minutes=get_settings().queue_aging_minutes)


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
    """Check-in puts the patient on a queue, in the tier the care policy gives them; an isolation
    patient is never queued next to another one (`domain.queueing.isolation`)."""
    for _ in range(ATTEMPTS):
        with Session(get_engine(), expire_on_commit=False) as s:
            if s.get(QueueDefinition, queue_id) is None:
                raise NotFound(f"no queue {queue_id}")
            live = s.exec(select(QueueTicket).where(QueueTicket.live_accession == accession_number)).first()
            if live is not None:
                return _out(live)
            policy = current_policy(s)  # the care policy version in force (services.care_policy)
            rank, reason = policy.tier(traits)
            now = utcnow()
            t = QueueTicket(id=f"qt-{uuid.uuid4().hex[:16]}", accession_number=accession_number,
                            live_accession=accession_number, patient_name=patient_name, queue_id=queue_id, tier=rank,
                            tier_reason=reason, policy_version=policy.version, seq=now.timestamp(), joined_at=now,
                            updated_at=now, isolation="isolation" in traits.flags)
            if not _place(s, t, actor):
                s.rollback()
                continue
            s.add(t)
            s.add(QueueCall(ticket_id=t.id, queue_id=queue_id, mode="join", detail=reason, actor=actor))
            try:
                s.commit()
            except IntegrityError:  # the same accession joined from elsewhere a moment ago
                s.rollback()
                continue
            return _out(t)
    raise Conflict("the queue kept changing; check in again")


def _place(session: Session, ticket: QueueTicket, actor: str) -> bool:
    """Give `ticket` (not yet written) its place; ordinary patients moved in front of an isolation
    patient to separate two of them are written with conditional UPDATEs (False: someone moved first)."""
    if not triage.current_rules(session).separate_isolation:
        return True
    rows = session.exec(select(QueueTicket).where(QueueTicket.queue_id == ticket.queue_id,
                                                  QueueTicket.state == "waiting", QueueTicket.id != ticket.id)).all()
    isolated = {r.id for r in rows if r.isolation} | ({ticket.id} if ticket.isolation else set())
    before = {r.id: _item(r) for r in rows}
    for new in isolation.place(list(before.values()), _item(ticket), isolated):
        if new.id == ticket.id:
            ticket.seq = new.seq
            continue
        if not _write(session, before[new.id], new):
            return False
        session.add(QueueCall(ticket_id=new.id, queue_id=new.queue_id, mode="gap", actor=actor,
                              detail=f"moved up to keep isolation patients apart ({ticket.id} joined)"))
    return True


def _write(session: Session, old: Item, new: Item) -> bool:
    """The conditional UPDATE: only if the ticket is still as it was read."""
    q = QueueTicket
    finished = new.state in ("done", "left")
    values = dict(state=new.state, room_id=new.room_id, calls=new.calls, seq=new.seq, queue_id=new.queue_id,
                  tier=new.tier, tier_reason=new.tier_reason, updated_at=utcnow())
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
                new, call = calling.call_next(items, room_id, queues, _aging())
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


def condition_change(ticket_id: str, traits: PatientTraits, reason: str, actor: str) -> TicketOut:
    """A nurse reports a worse condition (R6.1.7): the new tier applies at once, the call log and the
    order's timeline keep why (the ordering side reads the timeline)."""
    with Session(get_engine(), expire_on_commit=False) as s:
        row = s.get(QueueTicket, ticket_id)
        if row is None:
            raise NotFound(f"no queue ticket {ticket_id}")
        old = _item(row)
        rank, rule = current_policy(s).tier(traits)
        try:
            new, call = calling.escalate(old, rank, f"{reason} ({rule})")
        except QueueRefusal as err:
            raise Conflict(str(err)) from err
        if not _write(s, old, new):
            raise Conflict("another terminal changed this patient a moment ago; refresh")
        _log(s, call, actor)
        write_event(s, EventInput(
            key=f"{ticket_id}/escalate/{old.tier}-{rank}", accession_number=old.accession_number, at=utcnow(),
            actor=actor, kind="condition_changed", summary=f"condition changed while waiting: {reason}",
            detail={"ticket_id": ticket_id, "from_tier": old.tier, "to_tier": rank, "rule": rule}))
        s.commit()
        return _out(new)


def _measured_minutes(session: Session, queue_id: str, since: datetime) -> float | None:
    """Mean time from the last call to finish of today's finished patients of the queue."""
    rows = session.exec(select(QueueCall.ticket_id, QueueCall.mode, QueueCall.at).where(
        QueueCall.queue_id == queue_id, QueueCall.at >= since,
        col(QueueCall.mode).in_(["next", "select", "recall", "finish"])).order_by(QueueCall.at, QueueCall.id)).all()
    called: dict[str, datetime] = {}
    spans = []
    for ticket, mode, at in rows:
        if mode == "finish":
            if ticket in called:
                spans.append((at - called.pop(ticket)).total_seconds() / 60)
        else:
            called[ticket] = at
    return sum(spans) / len(spans) if spans else None


def eta(ticket_id: str) -> EtaOut:
    """Places ahead x minutes per patient / rooms calling from the queue (R6.2.2 position/ETA notices)."""
    with Session(get_engine()) as s:
        row = s.get(QueueTicket, ticket_id)
        if row is None:
            raise NotFound(f"no queue ticket {ticket_id}")
        if row.state != "waiting":
            raise Conflict(f"patient is {row.state}, not waiting")
        queue = s.get(QueueDefinition, row.queue_id)
        items = [_item(t) for t in s.exec(select(QueueTicket).where(
            QueueTicket.queue_id == row.queue_id, QueueTicket.state == "waiting"))]
        measured = _measured_minutes(s, row.queue_id, utcnow() - timedelta(days=1))
        per = measured if measured is not None else get_settings().queue_minutes_per_patient
        ahead, minutes = calling.position_and_eta(items, _item(row), per, len(queue.rooms) if queue else 1, _aging())
        return EtaOut(ticket_id=ticket_id, position=ahead, minutes=round(minutes, 1), minutes_per_patient=round(per, 1),
                      basis="measured" if measured is not None else "configured")


class EtaNotice(BaseModel):
    ticket_id: str
    position: int
    minutes: float
    delivered: bool


def send_eta_notices(queue_id: str, limit: int = 10) -> list[EtaNotice]:
    """Tell the first `limit` waiting patients of a queue their place and estimated wait through
    their channel (apprise, R6.2.2); every attempt is a `notification_attempt` row."""
    with Session(get_engine()) as s:
        queue = s.get(QueueDefinition, queue_id)
        if queue is None:
            raise NotFound(f"no queue {queue_id}")
        tickets = s.exec(select(QueueTicket).where(QueueTicket.queue_id == queue_id,
                                                   QueueTicket.state == "waiting")).all()
        line = calling.waiting([_item(t) for t in tickets], [queue_id], _aging())[:limit]
        patients = {o.accession_number: o.patient_id for o in s.exec(select(ExamOrder).where(
            col(ExamOrder.accession_number).in_([i.accession_number for i in line])))}
        queue_name = queue.name
    sent = []
    for item in line:
        est = eta(item.id)
        patient_id = patients.get(item.accession_number, "")
        body = f"{queue_name}: {est.position} patient(s) ahead of you, about {est.minutes:.0f} minutes."
        delivered = False
        for url in resolve_urls("patient", patient_id):
            sender = apprise.Apprise()
            ok = sender.add(url) and sender.notify(title="Your place in the queue", body=body)
            delivered = delivered or bool(ok)
            with Session(get_engine()) as s:
                s.add(NotificationAttempt(
                    id=f"eta/{item.id}/{uuid.uuid4().hex[:8]}", accession_number=item.accession_number,
                    purpose="queue_eta", recipient=f"patient:{patient_id}", channel=redact(url),
                    attempted_at=utcnow(), delivered=bool(ok), error=None if ok else "delivery failed"))
                s.commit()
        sent.append(EtaNotice(ticket_id=item.id, position=est.position, minutes=est.minutes, delivered=delivered))
    return sent


def _room_queue(session: Session, room_id: str) -> str:
    """The room's exam queue; a room nobody gave one gets its own (`room-<id>`), so every
    checked-in patient is on a ticket the call desk sees."""
    for q in _queues(session):
        if room_id in q.rooms and q.stage == "exam":
            return q.id
    queue_id = f"room-{room_id}"
    try:
        define_queue(session, queue_id, f"Room {room_id}", [room_id])
        session.commit()
    except IntegrityError:  # another check-in defined it a moment ago
        session.rollback()
    return queue_id


class CheckInOut(TicketOut):
    triage: TriageOut | None = None
    merged_into: str | None = None


def _live_ticket(session: Session, accession_number: str) -> QueueTicket | None:
    """The unfinished ticket the accession is on, as its own or as a merged item."""
    row = session.exec(select(QueueTicket).where(QueueTicket.live_accession == accession_number)).first()
    if row is not None:
        return row
    item = session.exec(select(QueueTicketItem).where(QueueTicketItem.live_accession == accession_number)).first()
    return session.get(QueueTicket, item.ticket_id) if item is not None else None


def _exam_item(session: Session, order: ExamOrder, rooms: frozenset[str]) -> ExamItem:
    rule = active_rules(session).exam_rule(order.procedure_code, order.modality)
    return ExamItem(accession_number=order.accession_number, modality=order.modality, body_part=order.body_part,
                    needs_preparation=rule.prep_minutes > 0, rooms=rooms)


def _ticket_accessions(session: Session, ticket: QueueTicket) -> list[str]:
    items = session.exec(select(QueueTicketItem.accession_number).where(QueueTicketItem.ticket_id == ticket.id)).all()
    return list(items) or [ticket.accession_number]


def _merge_target(session: Session, order: ExamOrder, rooms: frozenset[str]) -> tuple[QueueTicket | None, dict]:
    """A waiting ticket of the same patient this order is one exam with, by the merge rules; and
    why each other waiting ticket stays separate."""
    rules = triage.current_rules(session).merge_rules
    mine = _exam_item(session, order, rooms)
    same_patient = select(ExamOrder.accession_number).where(ExamOrder.patient_id == order.patient_id,
                                                            ExamOrder.accession_number != order.accession_number)
    tickets = session.exec(select(QueueTicket).where(QueueTicket.state == "waiting",
                                                     col(QueueTicket.accession_number).in_(same_patient))).all()
    split: dict[str, str] = {}
    for t in tickets:
        queue = session.get(QueueDefinition, t.queue_id)
        orders = [session.get(ExamOrder, acc) for acc in _ticket_accessions(session, t)]
        theirs = [_exam_item(session, o, frozenset(queue.rooms if queue else [])) for o in orders if o is not None]
        if not theirs:
            continue
        verdicts = [verdict(o, mine, rules) for o in theirs]
        refused = next((v for v in verdicts if not v.merge), None)
        if refused is None:
            return t, {"merge_rule": verdicts[0].rule, "why": verdicts[0].reason}
        split[t.id] = refused.reason
    return None, {"split": split}


def _merge(session: Session, ticket: QueueTicket, accession_number: str, rule: str, actor: str) -> None:
    """Attach the accession to the ticket; the ticket's own accession becomes an item too."""
    have = set(session.exec(select(QueueTicketItem.accession_number).where(QueueTicketItem.ticket_id == ticket.id)))
    for acc in [ticket.accession_number, accession_number]:
        if acc not in have:
            session.add(QueueTicketItem(id=f"{ticket.id}/{acc}", ticket_id=ticket.id, accession_number=acc,
                                        live_accession=acc if acc != ticket.accession_number else None,
                                        merge_rule=rule))
    session.add(QueueCall(ticket_id=ticket.id, queue_id=ticket.queue_id, mode="join", actor=actor,
                          detail=f"merged {accession_number} ({rule})"))


def check_in(accession_number: str, room_id: str, actor: str, at: datetime) -> CheckInOut:
    """The exam loop's check-in (R6.2.2, R6.3 'arrived', R6.1.6): smart triage picks the room
    (`room_id` is the booked one), an order that is one exam with a waiting ticket of the same
    patient joins that ticket, else a ticket on the chosen room's queue tiered by priority, age,
    isolation and critical flags. Every choice is a `triage_decision` row and a timeline event;
    a retry returns the same ticket."""
    with Session(get_engine(), expire_on_commit=False) as s:
        order = s.get(ExamOrder, accession_number)
        if order is None:
            raise NotFound(f"no order {accession_number}")
        live = _live_ticket(s, accession_number)
        if live is not None:
            _complete_interrupted_check_in(s, live, accession_number, actor)
            return CheckInOut(**_out(live).model_dump())
        choice = triage.choose(s, order, at, room_id)
        rooms = frozenset(r.room_id for r in choice.ranking) or frozenset({choice.room_id})
        target, merge_detail = _merge_target(s, order, rooms)
        if target is not None:
            _merge(s, target, accession_number, merge_detail["merge_rule"], actor)
            why = f"one exam with {target.accession_number} on ticket {target.id}: {merge_detail['why']}"
            queue = s.get(QueueDefinition, target.queue_id)
            triage.record_decision(s, choice, accession_number=accession_number, ticket_id=target.id, kind="merge",
                                   room_id=queue.rooms[0] if queue else choice.room_id, why=why, actor=actor,
                                   rules_version=choice.rules_version, extra=merge_detail)
            _triage_event(s, accession_number, target.id, why, actor)
            if queue is not None and queue.rooms:
                _move_worklist(s, [accession_number], queue.rooms[0], actor)
            s.commit()
            return CheckInOut(**_out(target).model_dump(), triage=choice, merged_into=target.id)
        queue_id = _room_queue(s, choice.room_id)
        patient_name = s.get(Patient, order.patient_id).name
    flags = {"isolation"} if choice.facts.isolation != "none" else set()
    flags |= {"critical"} if choice.facts.critical else set()
    traits = PatientTraits(priority=order.priority, age=choice.facts.age, flags=frozenset(flags))
    ticket = join(accession_number, patient_name, queue_id, traits, actor)
    with Session(get_engine()) as s:
        triage.record_decision(s, choice, accession_number=accession_number, ticket_id=ticket.id, kind="triage",
                               room_id=choice.room_id, why=choice.why, actor=actor,
                               rules_version=choice.rules_version, extra=merge_detail)
        _triage_event(s, accession_number, ticket.id, choice.why, actor)
        _move_worklist(s, [accession_number], choice.room_id, actor)
        s.commit()
    return CheckInOut(**ticket.model_dump(), triage=choice)


def _move_worklist(session: Session, accessions: list[str], room_id: str, actor: str) -> None:
    """A patient queued for another room than the booked one is scanned there: the scheduled
    steps move with them, so the modality in that room finds them on its worklist (R4.2.2).
    Steps already performed stay where they were performed."""
    room = session.get(Room, room_id)
    if room is None:
        return
    for acc in accessions:
        steps = session.exec(select(WorklistEntry).where(WorklistEntry.accession_number == acc,
                                                         WorklistEntry.status == "scheduled",
                                                         WorklistEntry.room_id != room_id)).all()
        for step in steps:
            was = step.station_ae_title
            step.room_id, step.station_ae_title = room.id, room.station_ae_title
            session.add(step)
            write_event(session, EventInput(key=f"{acc}/worklist-moved/{step.id}/{room.id}", accession_number=acc,
                                            at=utcnow(), actor=actor, kind="worklist_moved",
                                            summary=f"worklist step {step.id} moved from {was} to {room.station_ae_title}",
                                            detail={"step": step.id, "from": was, "to": room.station_ae_title}))


def _complete_interrupted_check_in(session: Session, ticket: QueueTicket, accession_number: str, actor: str) -> None:
    """A retried check-in whose first try stopped after the ticket was written: the decision, the
    timeline event and the worklist move it did not reach are written now, for the room it queues for."""
    if session.exec(select(TriageDecision.id).where(TriageDecision.accession_number == accession_number)).first():
        return
    queue = session.get(QueueDefinition, ticket.queue_id)
    room_id = queue.rooms[0] if queue and queue.rooms else ""
    why = f"{room_id}: queued before an interruption; decision recorded on retry"
    triage.record_decision(session, None, accession_number=accession_number, ticket_id=ticket.id, kind="triage",
                           room_id=room_id, why=why, actor=actor, rules_version=triage.current_rules(session).version)
    _triage_event(session, accession_number, ticket.id, why, actor)
    if room_id:
        _move_worklist(session, [accession_number], room_id, actor)
    session.commit()


def _triage_event(session: Session, accession_number: str, ticket_id: str, why: str, actor: str) -> None:
    write_event(session, EventInput(key=f"{accession_number}/triage/{ticket_id}", accession_number=accession_number,
                                    at=utcnow(), actor=actor, kind="triaged", summary=f"queued for {why}",
                                    detail={"ticket_id": ticket_id}))


def override_room(ticket_id: str, room_id: str, reason: str, actor: str) -> TicketOut:
    """A registrar or nurse sends a waiting patient to another room against triage's choice: the
    reason and the rules it overrides are logged (call log, decision, timeline). A room that
    cannot do the exam at all is refused."""
    with Session(get_engine(), expire_on_commit=False) as s:
        row = s.get(QueueTicket, ticket_id)
        if row is None:
            raise NotFound(f"no queue ticket {ticket_id}")
        room = s.get(Room, room_id)
        if room is None:
            raise NotFound(f"no room {room_id}")
        order = s.get(ExamOrder, row.accession_number)
        if order is not None and order.modality not in room.modalities.split():
            raise Conflict(f"room {room_id} does not do {order.modality}")
        if row.state != "waiting":
            raise Conflict(f"patient is {row.state}, not waiting")
        queue_id = _room_queue(s, room_id)
        if queue_id == row.queue_id:
            raise Conflict(f"the patient already queues for room {room_id}")
        overridden: list[dict] = []
        if order is not None:
            out = triage.choose(s, order, utcnow(), room_id)
            overridden = [r.model_dump() for r in out.refusals if r.room_id == room_id]
        old = _item(row)
        new, _call = calling.transfer(old, next(q for q in _queues(s) if q.id == queue_id))
        moved = QueueTicket(**{**row.model_dump(), "queue_id": queue_id})  # not in the session: a probe for _place
        if not _write(s, old, new):
            raise Conflict("another terminal changed this patient a moment ago; refresh")
        if not _place(s, moved, actor):
            s.rollback()
            raise Conflict("the queue changed a moment ago; override again")
        if moved.seq != new.seq:
            s.execute(update(QueueTicket).where(QueueTicket.id == row.id).values(seq=moved.seq),
                      execution_options=NO_SYNC)
        s.add(QueueCall(ticket_id=row.id, queue_id=queue_id, room_id=room_id, mode="override", actor=actor,
                        detail=f"from {old.queue_id}: {reason}"))
        why = f"{room_id}: overridden by {actor}: {reason}"
        for acc in _ticket_accessions(s, row):
            triage.record_decision(s, None, accession_number=acc, ticket_id=row.id, kind="override", room_id=room_id,
                                   why=why, actor=actor, rules_version=triage.current_rules(s).version,
                                   extra={"from_queue": old.queue_id, "reason": reason, "overrides": overridden})
            write_event(s, EventInput(key=f"{acc}/triage-override/{uuid.uuid4().hex[:8]}", accession_number=acc,
                                      at=utcnow(), actor=actor, kind="triage_overridden",
                                      summary=f"sent to room {room_id}: {reason}",
                                      detail={"ticket_id": row.id, "from_queue": old.queue_id, "overrides": overridden}))
        _move_worklist(s, _ticket_accessions(s, row), room_id, actor)
        s.commit()
        s.refresh(row)
        return _out(row)


def loop_state(accession_number: str, state: str, actor: str, room_id: str | None) -> None:
    """The loop's own moves on the patient's live ticket: exam started (called, unless the desk
    already called them), finished, or the order cancelled (left). A merged ticket finishes with
    its last item. Idempotent."""
    with Session(get_engine(), expire_on_commit=False) as s:
        ticket = _live_ticket(s, accession_number)
        if ticket is None:
            return
        if state in ("done", "left") and _finish_item(s, ticket, accession_number, state):
            return
    mode = {"called": "select", "done": "finish", "left": "leave"}.get(state)
    if mode is None or (mode == "select" and ticket.state != "waiting"):
        return
    try:
        act(ticket.id, mode, actor, room_id=room_id)
    except Conflict as err:
        # A desk or terminal moved the ticket meanwhile: the person's action stands over the loop's.
        log.info("queue ticket %s not moved to %s by the loop: %s", ticket.id, mode, err.reason)


def _finish_item(session: Session, ticket: QueueTicket, accession_number: str, state: str) -> bool:
    """Mark one item of a merged ticket; True while other items still need the ticket."""
    items = session.exec(select(QueueTicketItem).where(QueueTicketItem.ticket_id == ticket.id)).all()
    if not items:
        return False
    for item in items:
        if item.accession_number == accession_number:
            item.state, item.live_accession = state, None
            session.add(item)
    session.commit()
    return any(i.state == "waiting" for i in items)


def board(room_id: str) -> BoardLine:
    with Session(get_engine()) as s:
        queues = _queues(s)
        ids = [q.id for q in calling.queues_of_room(room_id, queues)]
        items = [_item(t) for t in s.exec(select(QueueTicket).where(
            col(QueueTicket.queue_id).in_(ids) | ((QueueTicket.room_id == room_id) & (QueueTicket.state == "called")),
            col(QueueTicket.state).in_(["waiting", "called"])))]
        return calling.board(items, room_id, queues, aging=_aging())


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


class CloseLine(TicketOut):
    """An unfinished ticket as the daily-close task lists it: the name masked as on the displays."""

    patient: str


def unfinished_lines(day: date) -> list[CloseLine]:
    """`unfinished(day)` with each patient's masked name, for the daily-close task (R6.3)."""
    ids = [t.id for t in unfinished(day)]
    with Session(get_engine()) as s:
        rows = {t.id: t for t in s.exec(select(QueueTicket).where(col(QueueTicket.id).in_(ids)))}
    return [CloseLine(**_out(rows[i]).model_dump(), patient=calling.mask_name(rows[i].patient_name))
            for i in ids if i in rows]


def close_for_day(ticket_id: str, disposition: str, reason: str, actor: str) -> bool:
    """Daily close: finish or mark left one ticket, the reason kept in the call log; False when it
    was already closed (a retried activity or a desk that got there first), so it never runs twice."""
    left = disposition == "left"
    for _ in range(ATTEMPTS):
        with Session(get_engine(), expire_on_commit=False) as s:
            row = s.get(QueueTicket, ticket_id)
            if row is None:
                raise NotFound(f"no queue ticket {ticket_id}")
            if row.state in ("done", "left"):
                return False
            old = _item(row)
            new, call = calling.finish(old, left=left)
            if not _write(s, old, new):
                continue  # a terminal moved it meanwhile: read again
            for item in s.exec(select(QueueTicketItem).where(QueueTicketItem.ticket_id == ticket_id,
                                                             QueueTicketItem.state == "waiting")):
                item.state, item.live_accession = new.state, None
                s.add(item)
            call = calling.Call(call.mode, call.item_id, call.queue_id, call.room_id, f"daily close: {reason}".strip(": "))
            _log(s, call, actor)
            s.commit()
            return True
    raise Conflict("the ticket kept changing; try the daily close again")
