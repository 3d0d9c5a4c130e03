"""Waiting-room screens (R6.2.2 (5)): room name, how many wait, who is called, the next few.

Names are masked by the queue service (张三丰 -> 张*丰); the page follows the existing
Server-Sent Events feed (`/api/v1/queues/feed`) and updates without a reload.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlmodel import select

from api.deps import in_thread, require
from core.db import session_scope
from domain.tables import Room, User
from security.permissions import Permission
from services import queueing
from services.errors import NotFound
from web.render import page
from web.route import PageRoute

router = APIRouter(prefix="/web", route_class=PageRoute, include_in_schema=False)
Viewer = Annotated[User, Depends(require(Permission.queue_board_read))]


def _rooms() -> list[Room]:
    with session_scope() as s:
        return list(s.exec(select(Room).order_by(Room.id)).all())


def _room(room_id: str) -> Room:
    with session_scope() as s:
        room = s.get(Room, room_id)
        if room is None:
            raise NotFound(f"no room {room_id}")
        return room


@router.get("/queues")
async def rooms(user: Viewer, request: Request) -> Response:
    return page(request, "queues.html", user=user, rooms=await in_thread(_rooms))


@router.get("/queues/{room_id}")
async def screen(room_id: str, user: Viewer, request: Request) -> Response:
    room = await in_thread(_room, room_id)
    board = asdict(await in_thread(queueing.board, room_id))
    return page(request, "queue_screen.html", user=user, room=room, board=board)
