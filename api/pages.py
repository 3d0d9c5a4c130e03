"""Server-rendered pages (Jinja2, autoescaped): one environment for every page."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)
