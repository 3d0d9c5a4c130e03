"""Figures for the manager dashboard beyond critical values: report turnaround by tier (R7.1.1)
and quality-control rejects (R8.1 order QC, R8.2 image QC). Pure functions over rows."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from domain.critical_metrics import percentile

TIERS = ("draft", "preliminary", "final")


def _utc(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ReportTimes:
    """One exam: when it was completed, and when each report tier first appeared (final: signed)."""

    accession_number: str
    exam_completed_at: datetime
    tiers: dict[str, datetime]

    def minutes(self, tier: str) -> float | None:
        at = self.tiers.get(tier)
        return None if at is None else (_utc(at) - _utc(self.exam_completed_at)).total_seconds() / 60


@dataclass(frozen=True)
class TierTurnaround:
    tier: str
    count: int
    p50_minutes: float | None
    p90_minutes: float | None


def turnaround_by_tier(exams: list[ReportTimes]) -> list[TierTurnaround]:
    out = []
    for tier in TIERS:
        values = [m for e in exams if (m := e.minutes(tier)) is not None and m >= 0]
        out.append(TierTurnaround(tier, len(values), percentile(values, 50), percentile(values, 90)))
    return out


@dataclass(frozen=True)
class QCRejects:
    orders: int
    order_qc_failed: int
    images_graded: int
    grades: dict[str, int]

    @property
    def order_reject_rate(self) -> float | None:
        return self.order_qc_failed / self.orders if self.orders else None

    @property
    def image_reject_rate(self) -> float | None:
        """Grade D: not diagnosable, the exam is repeated (R8.2)."""
        return self.grades.get("D", 0) / self.images_graded if self.images_graded else None


def qc_rejects(orders: int, order_fix_tasks: int, grades: list[str]) -> QCRejects:
    counts = Counter(grades)
    return QCRejects(orders, order_fix_tasks, len(grades), {g: counts.get(g, 0) for g in "ABCD"})
