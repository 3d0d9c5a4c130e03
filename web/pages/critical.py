"""The critical-value board (R7.1.3, R8.7): every open critical value with its clock and ladder
level, refreshed live; clinicians acknowledge from it with the read-back.

The acknowledgment is the API's own (`api.routes.critical_values.acknowledge`): the same
checks, the same Temporal update, the same refusals, shown on the board.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import col, select

from api.deps import TemporalConnectorDep, get_clock, in_thread, require
from api.errors import STATUS_BY_ERROR
from api.routes import critical_values as cv_api
from core.db import session_scope
from domain.tables import CriticalValue, ExamOrder, NotificationAttempt, User
from security import need_to_know
from security.permissions import Permission, allows
from services.errors import LoopError
from web.csrf import require_csrf
from web.render import fragment, page
from web.route import PageRoute

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)
Reader = Annotated[User, Depends(require(Permission.critical_value_read))]
Clinician = Annotated[User, Depends(require(Permission.critical_value_ack))]
OPEN_STATES = ("notifying", "phone_call", "acknowledged")
AWAITING_ACK = ("notifying", "phone_call")


@dataclass
class BoardRow:
    value: CriticalValue
    last_attempt: NotificationAttempt | None
    overdue: bool


def open_values(user: User, now: datetime | None = None) -> list[BoardRow]:
    """Open critical values, oldest first (the longest waiting on top), with the latest attempt.
    A clinician's board holds those they need to know: their patients', and any they were paged for."""
    now = now or datetime.now(timezone.utc)
    with session_scope() as s:
        values = s.exec(select(CriticalValue)
                        .join(ExamOrder, col(ExamOrder.accession_number) == CriticalValue.accession_number,
                              isouter=True)
                        .where(col(CriticalValue.state).in_(OPEN_STATES),
                               need_to_know.visible_critical_values(user, now))
                        .order_by(col(CriticalValue.raised_at))).all()
        rows = []
        for v in values:
            last = s.exec(select(NotificationAttempt).where(NotificationAttempt.critical_value_id == v.id)
                          .order_by(col(NotificationAttempt.attempted_at).desc(), col(NotificationAttempt.id).desc())).first()
            raised = v.raised_at if v.raised_at.tzinfo else v.raised_at.replace(tzinfo=timezone.utc)
            overdue = v.state in AWAITING_ACK and (now - raised).total_seconds() > v.deadline_seconds
            rows.append(BoardRow(v, last, overdue))
        return rows


def _board_context(user: User) -> dict:
    return {"may_ack": allows(user.role, Permission.critical_value_ack), "awaiting": AWAITING_ACK, "user": user}


@router.get("/critical")
async def board(user: Reader, request: Request, acked: bool = False) -> Response:
    rows = await in_thread(open_values, user, get_clock(request).now())
    return page(request, "critical.html", rows=rows, acked=acked, errors={}, **_board_context(user))


@router.get("/critical/live", response_class=HTMLResponse)
async def board_rows(user: Reader, request: Request) -> HTMLResponse:
    """The board's rows alone, for the page's live refresh."""
    rows = await in_thread(open_values, user, get_clock(request).now())
    return HTMLResponse(fragment("critical_rows.html", request, rows=rows, errors={}, **_board_context(user)),
                        headers={"Cache-Control": "no-store"})


@router.post("/critical/{cv_id}/ack", dependencies=[Depends(require_csrf)])
async def acknowledge(cv_id: str, user: Clinician, request: Request, connector: TemporalConnectorDep,
                      clinician_name: Annotated[str, Form()] = "", read_back: Annotated[str, Form()] = "") -> Response:
    try:
        body = cv_api.AckIn(clinician_name=clinician_name, read_back=read_back)
        await cv_api.acknowledge(cv_id, body, user, connector)
    except (ValidationError, LoopError) as err:
        reason = err.reason if isinstance(err, LoopError) else "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_input=False))
        rows = await in_thread(open_values, user, get_clock(request).now())
        code = 422 if isinstance(err, ValidationError) else next(
            (c for t, c in STATUS_BY_ERROR.items() if isinstance(err, t)), 409)
        # what was typed stays in the row, so a refused read-back is corrected, not retyped
        typed = {cv_id: {"clinician_name": clinician_name, "read_back": read_back}}
        return page(request, "critical.html", rows=rows, acked=False, errors={cv_id: reason}, typed=typed,
                    status_code=code, **_board_context(user))
    return RedirectResponse("/web/critical?acked=1", status_code=status.HTTP_303_SEE_OTHER)
