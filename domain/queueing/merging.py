"""Merge or split a patient's exam items into queue tickets (R6.1.6), by rules that are data.

Items merge into one ticket (one exam in one room) when a rule names their modality and their
body parts fall in one region of that rule (two CT orders for chest and abdomen become one
scan). They stay separate tickets when the modality differs, no rule joins them, either needs a
preparation stage first (contrast, bowel prep), or no room can do both.
"""
from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class MergeRule(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    modality: str
    regions: tuple[frozenset[str], ...] = Field(
        (), description="Body-part groups scanned together; none: only the same body part merges")

    def region_of(self, body_part: str) -> frozenset[str] | None:
        if not self.regions:
            return frozenset({body_part})
        return next((g for g in self.regions if body_part in g), None)


class ExamItem(BaseModel):
    model_config = ConfigDict(frozen=True)
    accession_number: str
    modality: str
    body_part: str
    needs_preparation: bool = False
    rooms: frozenset[str] = Field(description="Rooms triage allows for this item")


class MergeVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)
    merge: bool
    reason: str
    rule: str | None = None


def verdict(a: ExamItem, b: ExamItem, rules: Sequence[MergeRule]) -> MergeVerdict:
    """Whether two items of one patient are one exam, and why (or why not)."""
    if a.modality != b.modality:
        return MergeVerdict(merge=False, reason=f"different modalities ({a.modality}, {b.modality})")
    prepared = [i.accession_number for i in (a, b) if i.needs_preparation]
    if prepared:
        return MergeVerdict(merge=False, reason=f"{', '.join(prepared)} needs a preparation stage first")
    if not a.rooms & b.rooms:
        return MergeVerdict(merge=False, reason="no room can do both")
    for rule in rules:
        if rule.modality != a.modality:
            continue
        region = rule.region_of(a.body_part)
        if region is not None and b.body_part in region:
            return MergeVerdict(merge=True, reason=f"one {a.modality} exam: {a.body_part} + {b.body_part}",
                                rule=rule.name)
    return MergeVerdict(merge=False, reason=f"no merge rule joins {a.body_part} and {b.body_part}")


def plan_tickets(items: Sequence[ExamItem], rules: Sequence[MergeRule]) -> list[list[ExamItem]]:
    """Group items into tickets in order: each item joins the first ticket every item of which it
    merges with, else starts its own."""
    tickets: list[list[ExamItem]] = []
    for item in items:
        home = next((t for t in tickets if all(verdict(o, item, rules).merge for o in t)), None)
        if home is None:
            tickets.append([item])
        else:
            home.append(item)
    return tickets


DEFAULT_MERGE_RULES: tuple[MergeRule, ...] = (
    MergeRule(name="CT chest-abdomen-pelvis in one scan", modality="CT",
              regions=(frozenset({"CHEST", "ABDOMEN", "PELVIS"}), frozenset({"HEAD", "NECK"}))),
    MergeRule(name="same-region MR sequences", modality="MR"),
    MergeRule(name="abdominal ultrasound in one session", modality="US",
              regions=(frozenset({"ABDOMEN", "LIVER", "KIDNEY", "PANCREAS", "SPLEEN", "GALLBLADDER"}),)),
)
