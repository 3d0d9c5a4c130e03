"""What a patient must sign or be told before check-in lets them through (R6.1.3, R6.1.4).

Pure rules over the exam's booking rule and the patient's sex and age, so the check-in
task can show them and the loop's validator can refuse a check-in that lacks one.
"""
from __future__ import annotations

from datetime import date
from enum import StrEnum

from domain.booking.rules import ExamTypeRule

IONISING = frozenset({"CT", "DX", "CR", "DR", "RF", "MG", "XA", "NM", "PT"})


class CheckInNeed(StrEnum):
    contrast_consent = "contrast_consent"  # signed consent to the contrast agent
    mr_safety_screening = "mr_safety_screening"  # metal implants, pacemaker, pregnancy: screened and signed
    radiation_notice = "radiation_notice"  # women of child-bearing age told of the radiation (pregnancy asked)


def age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def check_in_needs(exam: ExamTypeRule, sex: str, birth_date: date | None, day: date,
                   childbearing_ages: tuple[int, int]) -> list[CheckInNeed]:
    """The exam's required consents and notices, in a stable order."""
    needs = []
    if exam.contrast in ("iodinated", "gadolinium"):
        needs.append(CheckInNeed.contrast_consent)
    if exam.requires_mr_screening:
        needs.append(CheckInNeed.mr_safety_screening)
    if exam.modality in IONISING and sex == "F" and birth_date is not None:
        low, high = childbearing_ages
        if low <= age_on(birth_date, day) <= high:
            needs.append(CheckInNeed.radiation_notice)
    return needs
