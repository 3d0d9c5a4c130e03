"""The pages served for real: the app under uvicorn on a free port in the test's own event loop
(so it shares the test's Temporal client and worker), and headless Debian Chromium driven by
Playwright. Screenshots go under the test's tmp_path (`screens/`)."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright
from sqlmodel import Session
from temporalio.client import Client

from api.main import create_app
from core.db import get_engine
from domain.enums import Role
from security.clock import Clock, SystemClock
from tests.support.people import Person, enrol

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
VIEWPORT = {"width": 1366, "height": 768}


@dataclass
class Site:
    base: str
    screens: Path

    def url(self, path: str) -> str:
        return self.base + path

    async def shot(self, page: Page, name: str) -> Path:
        path = self.screens / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, client: Client | None = None, clock: Clock | None = None) -> AsyncIterator[Site]:
    app = create_app(temporal_client=client, clock=clock or SystemClock())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    screens = tmp_path / "screens"
    screens.mkdir(exist_ok=True)
    try:
        yield Site(f"http://127.0.0.1:{port}", screens)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 15)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            await b.close()


def person(role: Role, clock: Clock | None = None) -> Person:
    """The seeded demo user of `role` (core.seed), given a password and a TOTP secret."""
    with Session(get_engine(), expire_on_commit=False) as db:
        return enrol(db, clock or SystemClock(), role.value, role)


async def log_in(page: Page, site: Site, who: Person, path: str = "/web/", clock: Clock | None = None) -> None:
    """Password and the authenticator's current code, typed into the login form."""
    await page.goto(site.url(path))
    await page.fill("#username", who.username)
    await page.fill("#password", who.password)
    now = (clock or SystemClock()).now()
    await page.fill("#totp", pyotp.TOTP(who.totp_secret).at(now))
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
