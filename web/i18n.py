"""One message catalogue for every page: zh-CN by default, English on request (cookie `radloop_lang`).

Catalogues are JSON files in `web/messages/`, one per language, with the same keys
(tests/web/test_i18n.py keeps them in step). A key missing from a language falls back
to zh-CN, then to the key itself, so a page never fails for a missing string.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from fastapi import Request

DEFAULT = "zh-CN"
LANGUAGES = ("zh-CN", "en")
LANG_COOKIE = "radloop_lang"
_DIR = Path(__file__).parent / "messages"


@lru_cache
def catalogue(lang: str) -> dict[str, str]:
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def language_of(request: Request) -> str:
    wanted = request.cookies.get(LANG_COOKIE, DEFAULT)
    return wanted if wanted in LANGUAGES else DEFAULT


def translate(lang: str, key: str, **values: object) -> str:
    text = catalogue(lang).get(key) or catalogue(DEFAULT).get(key) or key
    return text.format(**values) if values else text


def translate_or(lang: str, key: str, fallback: str) -> str:
    """For labels that may be absent from the catalogue (schema fields): the schema's own title then."""
    return catalogue(lang).get(key) or catalogue(DEFAULT).get(key) or fallback
