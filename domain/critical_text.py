"""Text rules that suggest critical items from a report's text (R8.7.2), negation-aware.

A suggestion is only a prompt for the reader; a human confirms it. A term counts
only when no negation cue stands before it in the same clause ("未见气胸",
"no pneumothorax") and no resolution cue follows it ("气胸已吸收").
"""
from __future__ import annotations

import re

from pydantic import BaseModel

from domain.critical_dictionary import CriticalItemSpec

CLAUSE_BREAK = re.compile(r"[。；;，,\n.!?！？]|\bbut\b|但|然而")
NEG_BEFORE_ZH = ("未见", "未发现", "未示", "无明显", "无", "没有", "排除", "不伴", "否认", "未提示", "不支持")
NEG_BEFORE_EN = ("no ", "without ", "negative for ", "no evidence of ", "ruled out", "rule out ", "absence of ",
                 "free of ", "not ")
RESOLVED_AFTER = ("已吸收", "已消失", "已复张", "resolved", "has resolved")


class Suggestion(BaseModel):
    code: str
    term: str
    excerpt: str


def _clause_around(text: str, start: int, end: int) -> tuple[str, str]:
    """The clause text before and after a match (up to the nearest break)."""
    before = text[:start]
    cut = max((m.end() for m in CLAUSE_BREAK.finditer(before)), default=0)
    after = text[end:]
    nxt = CLAUSE_BREAK.search(after)
    return before[cut:], after[: nxt.start() if nxt else len(after)]


def _negated(text: str, start: int, end: int) -> bool:
    before, after = _clause_around(text, start, end)
    low_before = " " + before.lower()
    if any(cue in before for cue in NEG_BEFORE_ZH) or any(cue in low_before for cue in NEG_BEFORE_EN):
        return True
    return any(cue in after.lower() for cue in RESOLVED_AFTER)


def suggest(text: str, items: list[CriticalItemSpec], modality: str | None = None) -> list[Suggestion]:
    """Critical items whose terms appear, not negated, in `text` (one suggestion per item)."""
    found: list[Suggestion] = []
    low = text.lower()
    for item in items:
        if modality and not item.applies_to(modality):
            continue
        for term in [*item.keywords_zh, *item.keywords_en]:
            hay, needle = (low, term.lower()) if term.isascii() else (text, term)
            hit = next((m for m in re.finditer(re.escape(needle), hay) if not _negated(text, m.start(), m.end())), None)
            if hit is not None:
                s, e = max(hit.start() - 15, 0), min(hit.end() + 15, len(text))
                found.append(Suggestion(code=item.code, term=term, excerpt=text[s:e]))
                break
    return found
