"""Care policies as configurable priority tiers (R6.2.2, R6.1.6).

A patient's tier is the lowest rank among the rules they match (emergency first, the
elderly, the disabled, patients back from preparation...); within a tier the order is
arrival (`seq`). Rules are data, so a center changes its policy without a release.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Flag = Literal["disabled", "returning_after_preparation", "pregnant", "child", "isolation", "critical"]


class PatientTraits(BaseModel):
    """What the policy looks at; set at check-in and when preparation ends."""

    model_config = ConfigDict(frozen=True)
    priority: Literal["stat", "urgent", "routine"] = "routine"
    age: int = Field(ge=0)
    flags: frozenset[Flag] = frozenset()


class PriorityRule(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    rank: int = Field(ge=0, description="Lower is called earlier")
    priorities: frozenset[str] = frozenset()
    min_age: int | None = None
    max_age: int | None = None
    flags: frozenset[Flag] = frozenset()

    def matches(self, t: PatientTraits) -> bool:
        """A rule matches when any of its stated criteria holds (priority, age band, a flag)."""
        age_band = (self.min_age is not None or self.max_age is not None) and \
            (self.min_age is None or t.age >= self.min_age) and (self.max_age is None or t.age <= self.max_age)
        return t.priority in self.priorities or age_band or bool(self.flags & t.flags)


class CarePolicy(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: int = 1
    rules: tuple[PriorityRule, ...]
    default_rank: int = 9

    def tier(self, traits: PatientTraits) -> tuple[int, str]:
        """(rank, rule name) of the best matching rule; the default tier otherwise."""
        best = min(((r.rank, r.name) for r in self.rules if r.matches(traits)), default=None)
        return best or (self.default_rank, "arrival order")


DEFAULT_POLICY = CarePolicy(rules=(
    PriorityRule(name="emergency first", rank=0, priorities=frozenset({"stat"})),
    PriorityRule(name="critical patient first", rank=0, flags=frozenset({"critical"})),
    PriorityRule(name="urgent", rank=1, priorities=frozenset({"urgent"})),
    PriorityRule(name="back from preparation", rank=2, flags=frozenset({"returning_after_preparation"})),
    PriorityRule(name="elderly (80+)", rank=3, min_age=80),
    PriorityRule(name="disabled", rank=3, flags=frozenset({"disabled"})),
    PriorityRule(name="young children", rank=4, max_age=6),
))
