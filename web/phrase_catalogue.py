"""Report phrases (R4.2.6 phrase templates): per modality and body part, in each UI language.

Data in `web/phrases/<lang>.json`, keyed "MODALITY/BODY_PART" with "*" as a wildcard, each
entry giving phrases per report section. A report gets the phrases of its exact key first,
then its modality's, then the general ones, so the likeliest phrase is the first button.
A language without a file, or without a key, falls back to zh-CN.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from web.i18n import DEFAULT

SECTIONS = ("findings", "impression", "recommendation")
_DIR = Path(__file__).parent / "phrases"

Catalogue = dict[str, dict[str, list[str]]]


@lru_cache
def catalogue(lang: str) -> Catalogue:
    path = _DIR / f"{lang}.json"
    if not path.exists():
        path = _DIR / f"{DEFAULT}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def phrases_for(lang: str, modality: str, body_part: str) -> dict[str, list[str]]:
    """Phrases per section for one exam, most specific first, without repeats."""
    out: dict[str, list[str]] = {s: [] for s in SECTIONS}
    keys = (f"{modality}/{body_part}", f"{modality}/*", "*/*")
    for cat in (catalogue(lang), catalogue(DEFAULT)):
        for key in keys:
            for section, items in cat.get(key, {}).items():
                if section in out:
                    out[section] += [p for p in items if p not in out[section]]
        if any(out.values()):
            break  # the page's own language had phrases; do not mix in another language
    return out
