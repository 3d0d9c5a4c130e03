"""Which consents and notices check-in requires (R6.1.4)."""
from __future__ import annotations

from datetime import date

from domain.booking.check_in import age_on, check_in_needs
from domain.booking.defaults import DEFAULT_RULES

DAY = date(2026, 6, 1)
AGES = (15, 49)


def needs(code: str, modality: str, sex: str, born: date | None) -> list[str]:
    return [n.value for n in check_in_needs(DEFAULT_RULES.exam_rule(code, modality), sex, born, DAY, AGES)]


def test_contrast_mr_and_radiation_rules() -> None:
    assert needs("CT-CHEST", "CT", "M", date(1990, 1, 1)) == []
    assert needs("CT-CHEST", "CT", "F", date(1990, 1, 1)) == ["radiation_notice"]
    assert needs("CT-ABD-C", "CT", "F", date(1990, 1, 1)) == ["contrast_consent", "radiation_notice"]
    assert needs("MR-ABD-C", "MR", "F", date(1990, 1, 1)) == ["contrast_consent", "mr_safety_screening"]
    assert needs("US-ABD", "US", "F", date(1990, 1, 1)) == []
    assert needs("CT-CHEST", "CT", "F", date(1950, 1, 1)) == []  # past child-bearing age
    assert needs("CT-CHEST", "CT", "F", None) == []  # unknown age: no rule fires


def test_age_boundaries() -> None:
    assert age_on(date(2011, 6, 1), DAY) == 15 and age_on(date(2011, 6, 2), DAY) == 14
    assert needs("CT-CHEST", "CT", "F", date(2011, 6, 1)) == ["radiation_notice"]
    assert needs("CT-CHEST", "CT", "F", date(2011, 6, 2)) == []
    assert needs("CT-CHEST", "CT", "F", date(1976, 6, 2)) == ["radiation_notice"]  # 49
    assert needs("CT-CHEST", "CT", "F", date(1976, 6, 1)) == []  # 50
