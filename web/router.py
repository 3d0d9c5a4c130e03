"""Mounts the pages (each module's router carries the /web prefix itself, so every route's
path is its full path, as the role x endpoint matrix test walks them) and the static files."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from web.pages import auth, critical, dashboard, inbox, loops, queues

STATIC = Path(__file__).parent / "static"
PAGES = (auth, inbox, loops, queues, critical, dashboard)


def mount(app: FastAPI) -> None:
    for module in PAGES:
        app.include_router(module.router)
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")
