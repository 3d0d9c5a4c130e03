"""Care policies as versioned data (R6.2.2): who is called first, published like the critical dictionary.

A version is the whole rule set (`CarePolicyRules`), validated before it is stored and
never edited afterwards: a change is a new version based on the newest one. The queue
tiers each ticket with the version in force when the patient joins and keeps that
version number on the ticket, so "why was this patient called first" has an answer later.
Version 1 is the policy the center ran before policies were data (`SEED_RULES`).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.queueing.policy import DEFAULT_POLICY, CarePolicy, PatientTraits, PriorityRule


class CarePolicyRules(BaseModel):
    """The stored shape of one policy version (the `rules` JSON of `care_policy_version`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[PriorityRule, ...] = Field(min_length=1, description="Matched in rank order, lowest first")
    default_rank: int = Field(9, ge=0, description="Tier of a patient no rule matches (arrival order)")

    @model_validator(mode="after")
    def _sound(self) -> "CarePolicyRules":
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        for r in self.rules:
            if not (r.priorities or r.flags or r.min_age is not None or r.max_age is not None):
                raise ValueError(f"rule {r.name!r} states no criterion: it would match nobody")
            if r.rank >= self.default_rank:
                raise ValueError(f"rule {r.name!r}: rank {r.rank} must be below default_rank {self.default_rank}")
        # Emergency first (R6.2.2): no rule may put anyone ahead of a stat patient.
        stat = PatientTraits(priority="stat", age=40)
        emergency = [r.rank for r in self.rules if r.matches(stat)]
        if not emergency:
            raise ValueError("a rule must put emergency (stat) patients first")
        if min(emergency) > min(r.rank for r in self.rules):
            raise ValueError("emergency (stat) patients must have the lowest rank")
        return self

    def policy(self, version: int) -> CarePolicy:
        return CarePolicy(version=version, rules=self.rules, default_rank=self.default_rank)


SEED_RULES = CarePolicyRules(rules=DEFAULT_POLICY.rules, default_rank=DEFAULT_POLICY.default_rank)
SEED_NOTE = "seed: the built-in policy (emergency, urgent, back from preparation, elderly 80+, disabled, young children)"
