"""Queue calling terminals and displays (R6.2.2, R6.3).

Registration and nurses put checked-in patients on queues; technologists and nurses call
(next, recall, skip, select, transfer, finish); every call is logged. Smart triage (R6.1.6):
the desk records where the patient comes from and how (bed, wheelchair, isolation) and sees
the room triage chooses and why; after check-in the decisions are listed, and a registrar or
nurse may send the patient to another room with a reason. Managers keep the room profiles,
areas, distances and versioned rules. Displays read a
room's board (masked names) or follow the live feed: Server-Sent Events, one `board`
event per room whenever the call log moves.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import date, datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.daily_close import DAILY_CLOSE_WORKFLOW, DailyCloseInput, daily_close_workflow_id
from api.deps import SessionDep, TemporalConnectorDep, in_thread, require
from api.errors import ErrorBody
from core.config import get_settings
from domain.queueing.policy import PatientTraits
from domain.tables import User
from security.permissions import Permission
from services import queueing, triage
from services.queueing import TicketOut
from services.triage import DecisionOut, TriageOut

router = APIRouter(prefix="/api/v1", tags=["queues"])
Desk = Annotated[User, Depends(require(Permission.queue_join))]
Caller = Annotated[User, Depends(require(Permission.queue_call))]
Viewer = Annotated[User, Depends(require(Permission.queue_board_read))]
Keeper = Annotated[User, Depends(require(Permission.queue_manage))]


class QueueIn(BaseModel):
    name: str
    rooms: list[str] = Field(min_length=1)
    stage: str = "exam"


class JoinIn(BaseModel):
    accession_number: str
    patient_name: str
    traits: PatientTraits


class ActIn(BaseModel):
    room_id: str | None = Field(None, description="select: the calling room")
    back: int | None = Field(None, ge=1, description="skip: places back (omit: to the end)")
    to_queue: str | None = Field(None, description="transfer: the target queue")


class BoardOut(BaseModel):
    room_id: str
    current: str | None
    next: list[str]
    waiting: int


@router.put("/queues/{queue_id}", status_code=status.HTTP_204_NO_CONTENT)
def put_queue(queue_id: str, body: QueueIn, session: SessionDep, _user: Keeper) -> None:
    queueing.define_queue(session, queue_id, body.name, body.rooms, body.stage)


@router.post("/queues/{queue_id}/tickets", response_model=TicketOut, status_code=status.HTTP_201_CREATED)
async def join(queue_id: str, body: JoinIn, user: Desk) -> TicketOut:
    return await in_thread(queueing.join, body.accession_number, body.patient_name, queue_id, body.traits, user.id)


@router.post("/rooms/{room_id}/call-next", response_model=TicketOut)
async def call_next(room_id: str, user: Caller) -> TicketOut:
    return await in_thread(queueing.call_next, room_id, user.id)


class ConditionIn(BaseModel):
    traits: PatientTraits = Field(description="The patient as they are now (priority, flags)")
    reason: str = Field(min_length=2, max_length=500)


@router.post("/queue-tickets/{ticket_id}/condition", response_model=TicketOut)
async def condition_change(ticket_id: str, body: ConditionIn, user: Desk) -> TicketOut:
    """Condition changed while waiting (R6.1.7): a higher care tier re-sorts the queue at once;
    409 with the reason when it would not raise the patient's priority."""
    return await in_thread(queueing.condition_change, ticket_id, body.traits, body.reason, user.id)


class OverrideIn(BaseModel):
    room_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=2, max_length=500)


@router.post("/queue-tickets/{ticket_id}/room-override", response_model=TicketOut)
async def override_room(ticket_id: str, body: OverrideIn, user: Desk) -> TicketOut:
    """Send a waiting patient to another room against triage's choice (R6.1.6); the reason and the
    rules it overrides are logged. 409 when the room cannot do the exam or the patient is not waiting."""
    return await in_thread(queueing.override_room, ticket_id, body.room_id, body.reason, user.id)


@router.post("/check-ins/{accession_number}/triage", response_model=TriageOut)
async def triage_facts(accession_number: str, body: triage.FactsIn, user: Desk) -> TriageOut:
    """Record the patient's facts at check-in (area or ward, transport, isolation, critical) and
    answer the room triage chooses now, with every room's score or refusal (R6.1.6). Completing
    the check-in task queues the patient by the same rules."""
    await in_thread(triage.record_facts, accession_number, body, user.id)
    return await in_thread(triage.preview, accession_number, datetime.now(timezone.utc))


@router.get("/check-ins/{accession_number}/triage", response_model=list[DecisionOut])
async def triage_decisions(accession_number: str, _user: Desk) -> list[DecisionOut]:
    """Why the patient queues where they do: triage's choice, a merge, overrides (oldest first)."""
    return await in_thread(triage.decisions, accession_number)


class DistanceIn(BaseModel):
    metres: float = Field(ge=0, le=100_000)


@router.put("/rooms/{room_id}/triage-profile", status_code=status.HTTP_204_NO_CONTENT)
def put_room_profile(room_id: str, body: triage.ProfileIn, session: SessionDep, user: Keeper) -> None:
    triage.set_profile(session, room_id, body, user.id)


@router.put("/triage/areas/{area_id}", status_code=status.HTTP_204_NO_CONTENT)
def put_area(area_id: str, body: triage.AreaIn, session: SessionDep, _user: Keeper) -> None:
    triage.set_area(session, area_id, body)


@router.put("/triage/distances/{area_id}/{room_id}", status_code=status.HTTP_204_NO_CONTENT)
def put_distance(area_id: str, room_id: str, body: DistanceIn, session: SessionDep, _user: Keeper) -> None:
    triage.set_distance(session, area_id, room_id, body.metres)


@router.get("/triage/rules", response_model=triage.TriageRules)
def get_rules(session: SessionDep, _user: Desk) -> triage.TriageRules:
    return triage.current_rules(session)


@router.post("/triage/rules", response_model=triage.TriageRules, status_code=status.HTTP_201_CREATED)
def publish_rules(body: triage.RulesIn, session: SessionDep, user: Keeper) -> triage.TriageRules:
    """A new version of the triage rules; check-ins from now on use it, earlier decisions keep theirs."""
    return triage.publish_rules(session, body, user.id)


@router.post("/queues/{queue_id}/eta-notices", response_model=list[queueing.EtaNotice])
async def eta_notices(queue_id: str, user: Caller,
                      limit: Annotated[int, Query(ge=1, le=50, description="First N waiting patients")] = 10,
                      ) -> list[queueing.EtaNotice]:
    """Send the first waiting patients their place and estimated wait through their channel."""
    return await in_thread(queueing.send_eta_notices, queue_id, limit)


@router.get("/queue-tickets/{ticket_id}/eta", response_model=queueing.EtaOut)
async def eta(ticket_id: str, _user: Viewer) -> queueing.EtaOut:
    """Places ahead and estimated wait, for the patient's screen, app or SMS (no names)."""
    return await in_thread(queueing.eta, ticket_id)


@router.post("/queue-tickets/{ticket_id}/{mode}", response_model=TicketOut)
async def act(ticket_id: str, mode: Literal["recall", "skip", "select", "transfer", "finish", "leave"], body: ActIn,
              user: Caller) -> TicketOut:
    return await in_thread(lambda: queueing.act(ticket_id, mode, user.id, room_id=body.room_id, back=body.back,
                                                to_queue=body.to_queue))


@router.get("/rooms/{room_id}/board", response_model=BoardOut)
async def board(room_id: str, _user: Viewer) -> BoardOut:
    return BoardOut(**asdict(await in_thread(queueing.board, room_id)))


@router.get("/queues/daily-close", response_model=list[TicketOut])
async def daily_close(day: date, _user: Keeper) -> list[TicketOut]:
    """Patients of `day` neither finished nor marked left: each needs a person to close it."""
    return await in_thread(queueing.unfinished, day)


class DailyCloseStarted(BaseModel):
    day: date
    workflow_id: str
    started: bool = Field(description="False: this day's close had already been started")


@router.post("/queues/daily-close/{day}", response_model=DailyCloseStarted, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": DailyCloseStarted, "description": "Already started for this day"},
                        503: {"model": ErrorBody}})
async def start_daily_close(day: date, _user: Keeper, response: Response,
                            connector: TemporalConnectorDep) -> DailyCloseStarted:
    """Start the day's close now (the schedule does it each evening): a registrars' task lists
    whoever is not finished, and each needs a disposition. Once per day; a repeat answers 200."""
    wid = daily_close_workflow_id(day)
    try:
        await (await connector.get()).start_workflow(
            DAILY_CLOSE_WORKFLOW, DailyCloseInput(day=day, timezone=get_settings().timezone), id=wid,
            task_queue=get_settings().temporal_task_queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        response.status_code = status.HTTP_200_OK
        return DailyCloseStarted(day=day, workflow_id=wid, started=False)
    return DailyCloseStarted(day=day, workflow_id=wid, started=True)


async def board_events(rooms: list[str], poll_seconds: float, max_events: int | None) -> AsyncIterator[str]:
    """A `board` event per room now, and again each time the call log moves."""
    seen, sent = -1, 0
    while max_events is None or sent < max_events:
        latest = await in_thread(queueing.last_change)
        if latest != seen:
            seen = latest
            for room in rooms:
                line = await in_thread(queueing.board, room)
                yield f"event: board\nid: {latest}\ndata: {json.dumps(asdict(line), ensure_ascii=False)}\n\n"
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
        await asyncio.sleep(poll_seconds)


@router.get("/queues/feed")
async def feed(_user: Viewer, rooms: Annotated[str, Query(description="Comma-separated room IDs")],
               max_events: Annotated[int | None, Query(ge=1, description="Stop after this many (tests, probes)")] = None,
               ) -> StreamingResponse:
    """Live boards for display screens (SSE); names are masked."""
    room_ids = [r for r in rooms.split(",") if r]
    return StreamingResponse(board_events(room_ids, 0.5, max_events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
