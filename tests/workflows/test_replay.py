"""Replay recorded histories with today's code: a change that would break a
running loop fails here (nondeterminism), before it reaches production.

New recordings: `scripts/record_histories.py <tag>`; keep every old file.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.temporal import data_converter
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_recorded_histories() -> None:
    names = {p.name.rsplit("-", 1)[0] for p in HISTORIES}
    assert {"exam_loop-full", "exam_loop-cancelled", "critical_value-escalated", "daily_close-two"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
    result = await Replayer(workflows=WORKFLOWS, data_converter=data_converter()).replay_workflow(
        history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_recorded_payloads_are_encrypted() -> None:
    """PHI never sits in a history in clear: every payload carries the codec's encoding.

    Search attributes are the exception by design (the server indexes them); they
    hold only the accession number, the opaque patient UUID, step, priority and
    the critical flag. So are patch markers (the SDK writes the patch ID in clear).
    """
    import base64

    encrypted = base64.b64encode(b"binary/encrypted-aesgcm").decode()
    for path in HISTORIES:
        text = path.read_text()
        assert "张三" not in text and "CT chest" not in text
        payload_encodings = [enc for enc in _encodings(json.loads(text))]
        assert payload_encodings and set(payload_encodings) == {encrypted}, path.name


def _encodings(node):
    if isinstance(node, dict):
        if "metadata" in node and "data" in node and isinstance(node["metadata"], dict) and "encoding" in node["metadata"]:
            yield node["metadata"]["encoding"]
        for key, value in node.items():
            if key not in ("searchAttributes", "markerRecordedEventAttributes"):
                yield from _encodings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _encodings(value)
