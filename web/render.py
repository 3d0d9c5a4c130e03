"""Rendering pages: one Jinja2 environment (autoescaped), the catalogue, the navigation a role sees."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.config import get_settings
from domain.tables import User
from security.permissions import Permission, allows
from security.policy import SecurityPolicy
from web import i18n
from web.csrf import csrf_token

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)

# (href, catalogue key, permission to see it)
NAV: list[tuple[str, str, Permission]] = [
    ("/web/inbox", "nav.inbox", Permission.task_read),
    ("/web/critical", "nav.critical", Permission.critical_value_read),
    ("/web/queues", "nav.queues", Permission.queue_board_read),
    ("/web/dashboard", "nav.dashboard", Permission.quality_metrics_read),
]


def local_time(value: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    """Times are stored in UTC; people read them in the center's time zone."""
    if value is None:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return aware.astimezone(ZoneInfo(get_settings().timezone)).strftime(fmt)


def iso_utc(value: datetime | None) -> str:
    if value is None:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).isoformat()


_ENV.filters["local"] = local_time
_ENV.filters["iso"] = iso_utc


def nav_for(user: User | None) -> list[tuple[str, str]]:
    return [(href, key) for href, key, perm in NAV if user is not None and allows(user.role, perm)]


def page(request: Request, template: str, *, user: User | None = None, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """The page in the caller's language, with navigation, CSRF token and idle-timeout for the header."""
    lang = i18n.language_of(request)
    idle = int(SecurityPolicy.from_settings(get_settings()).idle_timeout.total_seconds())
    html = _ENV.get_template(template).render(
        t=lambda key, **kw: i18n.translate(lang, key, **kw), tx=lambda key, fallback: i18n.translate_or(lang, key, fallback),
        lang=lang, user=user, nav=nav_for(user),
        csrf=csrf_token(request), idle_seconds=idle, path=request.url.path, **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def fragment(template: str, request: Request, **context: Any) -> str:
    """A part of a page (live refresh), rendered in the caller's language."""
    lang = i18n.language_of(request)
    return _ENV.get_template(template).render(t=lambda key, **kw: i18n.translate(lang, key, **kw), lang=lang,
                                              csrf=csrf_token(request), **context)
