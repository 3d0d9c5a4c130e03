"""api.timeline: mapping Temporal history events and merging them with business events in time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.history.v1 import HistoryEvent

from api.timeline import domain_entries, merge, temporal_entries
from domain.tables import DomainEvent

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def ev(event_id: int, minutes: float, **attrs) -> HistoryEvent:
    ts = Timestamp()
    ts.FromDatetime(T0 + timedelta(minutes=minutes))
    return HistoryEvent(event_id=event_id, event_time=ts, **attrs)


HISTORY = [
    ev(1, 0, workflow_execution_started_event_attributes={"workflow_type": {"name": "ExamLoop"}, "identity": "api@host"}),
    ev(2, 0.1, workflow_task_scheduled_event_attributes={}),  # bookkeeping: left out
    ev(5, 1, activity_task_scheduled_event_attributes={"activity_type": {"name": "run_order_qc"}}),
    ev(7, 2, activity_task_completed_event_attributes={"scheduled_event_id": 5, "identity": "worker-1"}),
    ev(9, 3, timer_started_event_attributes={"timer_id": "9", "start_to_fire_timeout": {"seconds": 600}}),
    ev(11, 10, workflow_execution_update_accepted_event_attributes={
        "accepted_request": {"input": {"name": "complete_task"}, "meta": {"identity": "api@host"}}}),
    ev(12, 10.5, workflow_execution_update_completed_event_attributes={"accepted_event_id": 11, "outcome": {"success": {}}}),
    ev(13, 11, activity_task_scheduled_event_attributes={"activity_type": {"name": "send_notification"}}),
    ev(14, 12, activity_task_failed_event_attributes={"scheduled_event_id": 13, "failure": {"message": "SMTP down"}}),
    ev(15, 13, start_child_workflow_execution_initiated_event_attributes={
        "workflow_type": {"name": "CriticalValue"}, "workflow_id": "critical-A1-1"}),
    ev(16, 20, child_workflow_execution_completed_event_attributes={
        "workflow_type": {"name": "CriticalValue"}, "workflow_execution": {"workflow_id": "critical-A1-1"}}),
    ev(17, 30, workflow_execution_completed_event_attributes={}),
]


def test_maps_the_events_people_care_about():
    got = [(e.who, e.what, e.outcome) for e in temporal_entries(HISTORY, "exam-loop-A1")]
    assert got == [
        ("api@host", "workflow ExamLoop started", ""),
        ("workflow", "activity run_order_qc scheduled", ""),
        ("worker-1", "activity run_order_qc", "completed"),
        ("workflow", "timer 9 started", "fires in 0:10:00"),
        ("api@host", "update complete_task", "accepted"),
        ("workflow", "update complete_task", "completed"),
        ("workflow", "activity send_notification scheduled", ""),
        ("worker", "activity send_notification", "failed: SMTP down"),
        ("workflow", "child workflow CriticalValue critical-A1-1", "initiated"),
        ("workflow", "child workflow CriticalValue critical-A1-1", "completed"),
        ("workflow", "workflow", "completed"),
    ]
    assert all(e.source == "temporal" and e.workflow_id == "exam-loop-A1" for e in temporal_entries(HISTORY, "exam-loop-A1"))


def test_merges_domain_events_between_history_events_by_time():
    domain = domain_entries(
        [
            DomainEvent(id="b", accession_number="A1", at=T0 + timedelta(minutes=10, seconds=40), actor="u-registrar",
                        kind="task_done", summary="Check in patient: done"),
            DomainEvent(id="a", accession_number="A1", at=T0 + timedelta(minutes=1, seconds=30), actor="system",
                        kind="order_qc_passed", summary="order complete"),
        ],
        "exam-loop-A1",
    )
    merged = merge(domain, temporal_entries(HISTORY, "exam-loop-A1"))
    assert [e.at for e in merged] == sorted(e.at for e in merged)
    pairs = [(e.what, e.outcome) for e in merged]
    i = pairs.index(("order_qc_passed", "order complete"))
    assert pairs[i - 1 : i + 2] == [
        ("activity run_order_qc scheduled", ""), ("order_qc_passed", "order complete"), ("activity run_order_qc", "completed"),
    ]
    j = pairs.index(("task_done", "Check in patient: done"))
    assert pairs[j - 1] == ("update complete_task", "completed")
    assert pairs[j + 1] == ("activity send_notification scheduled", "")
    assert [e.source for e in merged].count("domain") == 2


def test_naive_times_are_taken_as_utc_and_ties_keep_stream_order():
    naive = DomainEvent(id="n", accession_number="A1", at=(T0 + timedelta(minutes=1)).replace(tzinfo=None),
                        actor="system", kind="same_time", summary="")
    merged = merge(domain_entries([naive], "w"), temporal_entries(HISTORY[2:3], "w"))
    assert merged[0].at == merged[1].at == T0 + timedelta(minutes=1)
    assert [e.source for e in merged] == ["domain", "temporal"]


def test_local_activities_of_a_recorded_loop_show_as_activities():
    """Loops after `local-db-writes` run database work as local activities: markers, not ActivityTask events."""
    import json
    from pathlib import Path

    from temporalio.client import WorkflowHistory

    path = Path(__file__).parents[1] / "workflows" / "histories" / "exam_loop-full-v4.json"
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
    got = [(e.who, e.what, e.outcome) for e in temporal_entries(history.events, recorded["workflow_id"])]
    local = [g for g in got if g[0] == "worker (local activity)"]
    assert ("worker (local activity)", "activity run_order_qc", "completed") in local
    assert ("worker (local activity)", "activity advance_loop_step", "completed") in local
    assert sum(1 for g in local if g[1] == "activity open_task") >= 5  # check-in ... review: one per human task
    assert not any(what.startswith("activity ?") for _who, what, _o in got)
