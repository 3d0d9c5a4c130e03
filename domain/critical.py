"""Critical-value rules that must be the same in the workflow and the API."""
from __future__ import annotations

import re
import unicodedata


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\s\-_,.;:，。；：、]+", " ", text).strip()


def read_back_names_finding(finding: str, read_back: str) -> bool:
    """The read-back must name the finding: every word of it (CJK: the whole term)."""
    f, r = _normalise(finding), _normalise(read_back)
    if not f:
        return False
    words = [w for w in f.split(" ") if w]
    return all(w in r for w in words)
