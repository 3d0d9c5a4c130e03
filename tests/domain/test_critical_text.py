"""Negation-aware critical-item suggestions (R8.7.2)."""
from __future__ import annotations

import pytest

from domain.critical_dictionary import SEED_ITEMS
from domain.critical_text import suggest


@pytest.mark.parametrize("text,codes", [
    ("右侧张力性气胸，纵隔左移", ["tension_pneumothorax"]),
    ("未见气胸。", []),
    ("双肺未见明显气胸，右下肺炎", []),
    ("气胸已吸收", []),
    ("排除主动脉夹层", []),
    ("左侧硬膜下血肿", ["intracranial_haemorrhage"]),
    ("There is a large right pneumothorax.", ["tension_pneumothorax"]),
    ("No pneumothorax. No evidence of pulmonary embolism.", []),
    ("Filling defect consistent with pulmonary embolism", ["pulmonary_embolism"]),
    ("未见肺栓塞，但可见主动脉夹层", ["aortic_dissection"]),
    ("free air under the diaphragm", ["free_air"]),
])
def test_suggestions(text: str, codes: list[str]) -> None:
    assert [s.code for s in suggest(text, SEED_ITEMS)] == codes


def test_modality_filters_and_excerpt_shows_context() -> None:
    assert suggest("睾丸扭转", SEED_ITEMS, modality="CT") == []
    [hit] = suggest("超声示左侧睾丸扭转，血流消失", SEED_ITEMS, modality="US")
    assert hit.code == "testicular_torsion" and "睾丸扭转" in hit.excerpt
