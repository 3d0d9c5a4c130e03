"""Critical-value compliance (R8.7): what a quality office measures, from the rows alone.

Definitions (stated once, used by the API, the CSV and the chart):
- notified within 10 minutes: the first successful notice (or the recorded phone
  call) happened within 600 s of the moment the critical value was raised;
- time to acknowledgment: raised -> acknowledged (read-back or phone call);
- acknowledged within deadline: time to acknowledgment <= the item's deadline;
- concordance: share of critical values with a recorded outcome that the later
  outcome confirmed.
"""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel

TEN_MINUTES = 600


class CriticalFacts(BaseModel):
    """One critical value as the metrics see it (a view of the critical_value row)."""

    id: str
    accession_number: str
    item_code: str | None
    finding: str
    ordering_department: str | None
    raised_by: str
    raised_at: datetime
    state: str
    deadline_seconds: int = 600
    first_notified_at: datetime | None = None
    acked_at: datetime | None = None
    ack_channel: str | None = None
    escalations: int = 0
    action_at: datetime | None = None
    outcome: str | None = None

    def _utc(self, dt: datetime | None) -> datetime | None:
        if dt is None:
            return None
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt

    @property
    def confirmed(self) -> bool:
        return self.state not in ("not_confirmed", "verifying")

    @property
    def seconds_to_notice(self) -> float | None:
        first = self._utc(self.first_notified_at)
        if first is None and self.ack_channel == "phone_call":
            first = self._utc(self.acked_at)
        return None if first is None else (first - self._utc(self.raised_at)).total_seconds()

    @property
    def seconds_to_ack(self) -> float | None:
        acked = self._utc(self.acked_at)
        return None if acked is None else (acked - self._utc(self.raised_at)).total_seconds()

    @property
    def notified_within_10(self) -> bool:
        s = self.seconds_to_notice
        return s is not None and s <= TEN_MINUTES

    @property
    def acked_within_deadline(self) -> bool:
        s = self.seconds_to_ack
        return s is not None and s <= self.deadline_seconds

    def compliance_reasons(self, now: datetime) -> list[str]:
        reasons: list[str] = []
        if not self.notified_within_10:
            reasons.append("not notified within 10 minutes")
        if self.acked_at is None:
            if (now - self._utc(self.raised_at)).total_seconds() > self.deadline_seconds:
                reasons.append("no acknowledgment yet, deadline passed")
        elif not self.acked_within_deadline:
            reasons.append(f"acknowledged after {self.seconds_to_ack:.0f} s (deadline {self.deadline_seconds} s)")
        if self.ack_channel == "phone_call":
            reasons.append("reached only by phone")
        return reasons


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (what a quality report expects: an observed value)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Distribution(BaseModel):
    count: int
    p50: float | None
    p90: float | None
    p99: float | None


class GroupMetrics(BaseModel):
    key: str
    count: int
    notified_within_10_rate: float | None
    acked_within_deadline_rate: float | None
    ack_p50_seconds: float | None


class OutOfCompliance(BaseModel):
    id: str
    accession_number: str
    finding: str
    ordering_department: str | None
    raised_at: datetime
    reasons: list[str]


class WeekPoint(BaseModel):
    week_start: str
    count: int
    notified_within_10_rate: float | None
    ack_p50_seconds: float | None


class CriticalMetrics(BaseModel):
    total: int
    not_confirmed: int
    notified_within_10_rate: float | None
    acked_within_deadline_rate: float | None
    time_to_ack_seconds: Distribution
    escalation_counts: dict[str, int]
    phone_call_count: int
    concordance_rate: float | None
    concordance_recorded: int
    by_department: list[GroupMetrics]
    by_reader: list[GroupMetrics]
    out_of_compliance: list[OutOfCompliance]
    weekly: list[WeekPoint]


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _group(key: str, rows: list[CriticalFacts]) -> GroupMetrics:
    acks = [r.seconds_to_ack for r in rows if r.seconds_to_ack is not None]
    return GroupMetrics(key=key, count=len(rows), notified_within_10_rate=_rate([r.notified_within_10 for r in rows]),
                        acked_within_deadline_rate=_rate([r.acked_within_deadline for r in rows]),
                        ack_p50_seconds=percentile(acks, 50))


def compute(rows: list[CriticalFacts], now: datetime) -> CriticalMetrics:
    confirmed = [r for r in rows if r.confirmed]
    acks = [r.seconds_to_ack for r in confirmed if r.seconds_to_ack is not None]
    by_dept: dict[str, list[CriticalFacts]] = defaultdict(list)
    by_reader: dict[str, list[CriticalFacts]] = defaultdict(list)
    by_week: dict[str, list[CriticalFacts]] = defaultdict(list)
    escalations: dict[str, int] = defaultdict(int)
    for r in confirmed:
        by_dept[r.ordering_department or "unknown"].append(r)
        by_reader[r.raised_by].append(r)
        raised = r._utc(r.raised_at)
        by_week[(raised - timedelta(days=raised.weekday())).date().isoformat()].append(r)
        escalations[str(r.escalations)] += 1
    outcomes = [r for r in rows if r.outcome in ("confirmed", "not_confirmed")]
    ooc = [
        OutOfCompliance(id=r.id, accession_number=r.accession_number, finding=r.finding,
                        ordering_department=r.ordering_department, raised_at=r.raised_at, reasons=reasons)
        for r in confirmed if (reasons := r.compliance_reasons(now))
    ]
    weekly = []
    for week in sorted(by_week):
        wk = by_week[week]
        wk_acks = [r.seconds_to_ack for r in wk if r.seconds_to_ack is not None]
        weekly.append(WeekPoint(week_start=week, count=len(wk), notified_within_10_rate=_rate([r.notified_within_10 for r in wk]),
                                ack_p50_seconds=percentile(wk_acks, 50)))
    return CriticalMetrics(
        total=len(confirmed), not_confirmed=sum(not r.confirmed for r in rows),
        notified_within_10_rate=_rate([r.notified_within_10 for r in confirmed]),
        acked_within_deadline_rate=_rate([r.acked_within_deadline for r in confirmed]),
        time_to_ack_seconds=Distribution(count=len(acks), p50=percentile(acks, 50), p90=percentile(acks, 90),
                                         p99=percentile(acks, 99)),
        escalation_counts=dict(sorted(escalations.items())),
        phone_call_count=sum(r.ack_channel == "phone_call" for r in confirmed),
        concordance_rate=_rate([r.outcome == "confirmed" for r in outcomes]), concordance_recorded=len(outcomes),
        by_department=[_group(k, v) for k, v in sorted(by_dept.items())],
        by_reader=[_group(k, v) for k, v in sorted(by_reader.items())],
        out_of_compliance=sorted(ooc, key=lambda o: o.raised_at), weekly=weekly,
    )


CSV_COLUMNS = ["id", "accession_number", "item_code", "finding", "ordering_department", "raised_by", "raised_at",
               "state", "deadline_seconds", "seconds_to_notice", "notified_within_10", "seconds_to_ack",
               "acked_within_deadline", "ack_channel", "escalations", "outcome"]


def csv_row(r: CriticalFacts) -> list[str]:
    values = {**r.model_dump(), "seconds_to_notice": r.seconds_to_notice, "notified_within_10": r.notified_within_10,
              "seconds_to_ack": r.seconds_to_ack, "acked_within_deadline": r.acked_within_deadline}
    return ["" if values[c] is None else (values[c].isoformat() if isinstance(values[c], datetime) else str(values[c]))
            for c in CSV_COLUMNS]
