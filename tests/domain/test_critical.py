"""The read-back must name the finding (R7.1.3)."""
from __future__ import annotations

import pytest

from domain.critical import read_back_names_finding


@pytest.mark.parametrize("finding,read_back,ok", [
    ("tension pneumothorax", "Tension  Pneumothorax, right side, understood", True),
    ("tension pneumothorax", "pneumothorax", False),
    ("张力性气胸", "收到：右侧张力性气胸", True),
    ("张力性气胸", "收到：气胸", False),
    ("aortic dissection", "", False),
    ("", "anything", False),
])
def test_read_back(finding: str, read_back: str, ok: bool) -> None:
    assert read_back_names_finding(finding, read_back) is ok
