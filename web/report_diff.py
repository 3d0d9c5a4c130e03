"""The visible diff in the report editor: word-level (a Chinese character is a word), so a
one-character change in a one-line impression shows as that character, not the whole line.

`web/static/app.js` redraws the same diff in the browser while the text is edited; this
is the server's drawing, so the page shows it without script too.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# One CJK character, or a run of letters/digits, or a run of spaces, or any other single character.
TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9_]+|\s+|.", re.S)


@dataclass(frozen=True)
class Segment:
    op: str  # same | ins | del
    text: str


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text or "")


def inline_diff(old: str | None, new: str | None) -> list[Segment]:
    """Segments that turn `old` into `new`: deletions before insertions where text was replaced."""
    a, b = tokens(old or ""), tokens(new or "")
    out: list[Segment] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(Segment("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(Segment("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(Segment("ins", "".join(b[j1:j2])))
    return out


def changed(segments: list[Segment]) -> bool:
    return any(s.op != "same" for s in segments)
