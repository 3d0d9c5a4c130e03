"""Compliance arithmetic (R8.7): the 10-minute line, percentiles, reasons, concordance."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain.charts import weekly_compliance_svg
from domain.critical_metrics import CriticalFacts, compute, csv_row, percentile

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)  # a Monday


def cv(n: int, ack_after: float | None, notice_after: float | None = 5, **kw) -> CriticalFacts:
    base = dict(id=f"cv{n}", accession_number=f"A{n}", item_code="tension_pneumothorax", finding="tension pneumothorax",
                ordering_department="respiratory", raised_by="u-senior", raised_at=T0 + timedelta(days=n % 10),
                state="closed" if ack_after is not None else "notifying")
    raised = base["raised_at"]
    if notice_after is not None:
        base["first_notified_at"] = raised + timedelta(seconds=notice_after)
    if ack_after is not None:
        base["acked_at"] = raised + timedelta(seconds=ack_after)
        base["ack_channel"] = "ack"
    return CriticalFacts(**(base | kw))


def test_ack_at_9_59_is_in_compliance_and_10_01_is_not() -> None:
    early, late = cv(1, 599), cv(2, 601)
    assert early.acked_within_deadline and not late.acked_within_deadline
    m = compute([early, late], now=T0 + timedelta(days=30))
    assert m.acked_within_deadline_rate == 0.5 and m.notified_within_10_rate == 1.0
    assert [o.id for o in m.out_of_compliance] == ["cv2"]
    assert m.out_of_compliance[0].reasons == ["acknowledged after 601 s (deadline 600 s)"]


def test_notice_after_ten_minutes_and_no_ack_yet_are_listed_with_reasons() -> None:
    rows = [cv(3, None, notice_after=700), cv(4, None, notice_after=None)]
    m = compute(rows, now=T0 + timedelta(days=30))
    reasons = {o.id: o.reasons for o in m.out_of_compliance}
    assert reasons["cv3"] == ["not notified within 10 minutes", "no acknowledgment yet, deadline passed"]
    assert reasons["cv4"][0] == "not notified within 10 minutes"


def test_phone_call_counts_as_the_notice_and_is_flagged() -> None:
    row = cv(5, 500, notice_after=None, ack_channel="phone_call")
    assert row.notified_within_10
    m = compute([row], now=T0 + timedelta(days=30))
    assert m.phone_call_count == 1 and m.out_of_compliance[0].reasons == ["reached only by phone"]


def test_distribution_groups_escalations_and_concordance() -> None:
    rows = [cv(i, 60 * i, escalations=i // 4, outcome="confirmed" if i % 2 else None) for i in range(1, 11)]
    rows.append(cv(11, None, state="not_confirmed", outcome="not_confirmed"))
    m = compute(rows, now=T0 + timedelta(days=30))
    assert m.total == 10 and m.not_confirmed == 1
    assert (m.time_to_ack_seconds.p50, m.time_to_ack_seconds.p90, m.time_to_ack_seconds.p99) == (300, 540, 600)
    assert m.escalation_counts == {"0": 3, "1": 4, "2": 3}
    assert m.concordance_recorded == 6 and m.concordance_rate == round(5 / 6, 4)
    assert [g.key for g in m.by_department] == ["respiratory"] and m.by_department[0].count == 10
    assert [w.week_start for w in m.weekly] == ["2026-11-02", "2026-11-09"]
    assert sum(w.count for w in m.weekly) == 10


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2 and percentile(list(range(1, 101)), 99) == 99


def test_csv_row_and_chart() -> None:
    row = csv_row(cv(1, 120))
    assert row[0] == "cv1" and "120.0" in row and "True" in row
    svg = weekly_compliance_svg(["2026-11-02", "2026-11-09"], [1.0, 0.5], [120.0, None], "t <&>")
    assert svg.startswith("<svg") and svg.count("<rect") == 2 and "t &lt;&amp;&gt;" in svg and "<path" in svg
