"""Merging and splitting a patient's exam items into queue tickets by rule (R6.1.6)."""
from __future__ import annotations

from domain.queueing.merging import DEFAULT_MERGE_RULES, ExamItem, MergeRule, plan_tickets, verdict

CT = frozenset({"CT1", "CT2"})


def item(acc: str, modality: str = "CT", part: str = "CHEST", prep: bool = False, rooms=CT) -> ExamItem:
    return ExamItem(accession_number=acc, modality=modality, body_part=part, needs_preparation=prep, rooms=rooms)


def test_same_modality_and_region_merge_into_one_exam():
    v = verdict(item("A"), item("B", part="ABDOMEN"), DEFAULT_MERGE_RULES)
    assert v.merge and v.rule == "CT chest-abdomen-pelvis in one scan" and "CHEST + ABDOMEN" in v.reason


def test_split_reasons():
    rules = DEFAULT_MERGE_RULES
    assert "different modalities" in verdict(item("A"), item("B", modality="MR"), rules).reason
    assert "needs a preparation stage" in verdict(item("A"), item("B", part="ABDOMEN", prep=True), rules).reason
    assert "no room can do both" in verdict(item("A"), item("B", rooms=frozenset({"CT9"})), rules).reason
    assert "no merge rule joins CHEST and HEAD" in verdict(item("A"), item("B", part="HEAD"), rules).reason
    assert not verdict(item("A"), item("B"), ()).merge  # no rules: nothing merges


def test_a_rule_without_regions_merges_only_the_same_body_part():
    rules = (MergeRule(name="same part", modality="MR"),)
    mr = frozenset({"MR1"})
    assert verdict(item("A", "MR", "KNEE", rooms=mr), item("B", "MR", "KNEE", rooms=mr), rules).merge
    assert not verdict(item("A", "MR", "KNEE", rooms=mr), item("B", "MR", "HIP", rooms=mr), rules).merge


def test_plan_groups_items_into_tickets():
    items = [item("A"), item("B", part="HEAD"), item("C", part="PELVIS"), item("D", part="NECK"),
             item("E", part="ABDOMEN", prep=True)]
    plan = plan_tickets(items, DEFAULT_MERGE_RULES)
    assert [[i.accession_number for i in t] for t in plan] == [["A", "C"], ["B", "D"], ["E"]]
