"""Appointments from every channel through one API (R5.3.1-R5.3.4, R6.1.5).

Centre, online portal, kiosk, triage desk and doctor/nurse stations book, change and
cancel here; each action records the channel it came from. The channel a caller may
speak for follows from their role, so a kiosk cannot pose as the centre. A refusal is
409 with `detail` and `reasons` (one code and message each), so the desk can say why.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import SessionDep, in_thread, require
from domain.booking.calendar import CalendarTemplate
from domain.booking.feasibility import Refusal
from domain.booking.rules import BookingRules, Channel
from domain.booking.search import SlotQuote
from domain.enums import Role
from domain.tables import User
from security.permissions import Permission
from services import booking
from services.booking import BookingOut, BookingRefused, BookRequest, PatientFacts
from services.booking_calendar import active_rules, add_closure, publish_rules, set_room_calendar
from services.errors import Forbidden

router = APIRouter(prefix="/api/v1/appointments", tags=["appointments"])

# Which channels each role may act for. The portal and kiosks are machine clients (his_system).
ROLE_CHANNELS: dict[Role, frozenset[Channel]] = {
    Role.registrar: frozenset({Channel.centre, Channel.triage_desk}),
    Role.nurse: frozenset({Channel.nurse_station, Channel.triage_desk}),
    Role.clinician: frozenset({Channel.doctor_station}),
    Role.his_system: frozenset({Channel.online, Channel.kiosk, Channel.doctor_station, Channel.nurse_station}),
    Role.manager: frozenset({Channel.centre}),
}
Booker = Annotated[User, Depends(require(Permission.appointment_book))]  # its roles: ROLE_CHANNELS' keys
RuleKeeper = Annotated[User, Depends(require(Permission.schedule_rules_manage))]
NoShowRecorder = Annotated[User, Depends(require(Permission.appointment_no_show))]


class RefusalBody(BaseModel):
    detail: str
    reasons: list[Refusal]


def _refused(err: BookingRefused) -> JSONResponse:
    body = RefusalBody(detail=err.reason, reasons=err.reasons)
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_409_CONFLICT)


def _channel_of(user: User, channel: Channel) -> Channel:
    if channel not in ROLE_CHANNELS.get(Role(user.role), frozenset()):
        raise Forbidden(f"role {user.role!r} may not act for the {channel.value} channel")
    return channel


class BookIn(BaseModel):
    accession_numbers: list[str] = Field(min_length=1, max_length=6, description="Several: one-stop, one day")
    channel: Channel
    facts: PatientFacts = PatientFacts()
    not_before: datetime | None = None
    segment_ids: dict[str, int] = Field(default_factory=dict, description="Accession -> segment chosen from a quote")


class QuoteIn(BaseModel):
    accession_number: str
    channel: Channel
    facts: PatientFacts = PatientFacts()
    not_before: datetime | None = None
    limit: int = Field(20, ge=1, le=200)


class QuoteOut(BaseModel):
    refusals: list[Refusal] = Field(description="Request-level: no segment can cure these")
    slots: list[SlotQuote]


class ChangeIn(BaseModel):
    channel: Channel
    facts: PatientFacts = PatientFacts()
    segment_id: int | None = None
    not_before: datetime | None = None
    reason: str = ""


class CancelIn(BaseModel):
    channel: Channel
    reason: str = ""


class ClosureIn(BaseModel):
    start_at: datetime
    end_at: datetime
    reason: str = Field(min_length=1)


responses = {409: {"model": RefusalBody, "description": "Refused, with the reasons"}}


@router.post("/quote", response_model=QuoteOut)
async def quote(body: QuoteIn, user: Booker) -> QuoteOut:
    """The first free and refused segments for an exam, each with why (R5.3.4)."""
    channel = _channel_of(user, body.channel)
    refusals, slots = await in_thread(lambda: booking.quote_slots(
        body.accession_number, channel, body.facts, not_before=body.not_before, limit=body.limit))
    return QuoteOut(refusals=refusals, slots=slots)


@router.post("", response_model=list[BookingOut], status_code=status.HTTP_201_CREATED, responses=responses)
async def book(body: BookIn, user: Booker):
    """One exam: its earliest feasible time; several: close times on one day (R6.1.5)."""
    req = BookRequest(accession_numbers=body.accession_numbers, channel=_channel_of(user, body.channel),
                      actor=user.id, facts=body.facts, not_before=body.not_before, segment_ids=body.segment_ids)
    try:
        return await in_thread(booking.book, req)
    except BookingRefused as err:
        return _refused(err)


@router.get("", response_model=list[BookingOut])
async def list_bookings(user: Booker, accession_number: Annotated[str | None, Query()] = None,
                        patient_id: Annotated[str | None, Query()] = None) -> list[BookingOut]:
    return await in_thread(lambda: booking.bookings_of(accession_number, patient_id))


class ReceiptOut(BaseModel):
    plan_id: str
    text: str


@router.get("/plans/{plan_id}/receipt", response_model=ReceiptOut)
async def receipt(plan_id: str, _user: Booker) -> ReceiptOut:
    """Time, place, arrival, preparation and route of the plan's live bookings (R5.3.3, R5.3.5)."""
    return ReceiptOut(plan_id=plan_id, text=await in_thread(booking.receipt_for_plan, plan_id))


@router.post("/{booking_id}/change", response_model=BookingOut, responses=responses)
async def change(booking_id: str, body: ChangeIn, user: Booker):
    channel = _channel_of(user, body.channel)
    try:
        return await in_thread(lambda: booking.change(booking_id, channel, user.id, body.facts,
                                                      segment_id=body.segment_id, not_before=body.not_before,
                                                      reason=body.reason))
    except BookingRefused as err:
        return _refused(err)


@router.post("/{booking_id}/cancel", response_model=BookingOut, responses=responses)
async def cancel(booking_id: str, body: CancelIn, user: Booker):
    channel = _channel_of(user, body.channel)
    try:
        return await in_thread(lambda: booking.cancel(booking_id, channel, user.id, body.reason))
    except BookingRefused as err:
        return _refused(err)


@router.post("/{booking_id}/no-show", response_model=BookingOut)
async def no_show(booking_id: str, user: NoShowRecorder) -> BookingOut:
    """The patient did not come (R5.3.4): counts towards the online-booking sanction."""
    return await in_thread(booking.record_no_show, booking_id, user.id)


# ---- rules and calendars (managers) ---------------------------------------------------------

@router.get("/rules", response_model=BookingRules)
def get_rules(session: SessionDep, _user: Booker) -> BookingRules:
    return active_rules(session)


@router.post("/rules", response_model=BookingRules, status_code=status.HTTP_201_CREATED)
def post_rules(rules: BookingRules, session: SessionDep, user: RuleKeeper,
               note: Annotated[str, Query(max_length=200)] = "") -> BookingRules:
    """Publish the next rules version; bookings already made keep the version they were made under."""
    return publish_rules(session, rules, user.id, note)


@router.put("/rooms/{room_id}/calendar", status_code=status.HTTP_204_NO_CONTENT)
def put_calendar(room_id: str, template: CalendarTemplate, session: SessionDep, user: RuleKeeper) -> None:
    """Applies to segments opened from now on; segments already open keep their capacity."""
    set_room_calendar(session, room_id, template, user.id)


@router.post("/rooms/{room_id}/closures", status_code=status.HTTP_201_CREATED)
def post_closure(room_id: str, body: ClosureIn, session: SessionDep, user: RuleKeeper) -> dict[str, int]:
    row = add_closure(session, room_id, body.start_at, body.end_at, body.reason, user.id)
    return {"id": row.id}
