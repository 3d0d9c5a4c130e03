"""EMPI scoring: Chinese and pinyin names meet, evidence adds up, nothing below the threshold is queued."""
from __future__ import annotations

from datetime import date

import pytest

from domain.empi import (
    REVIEW_THRESHOLD,
    PersonFacts,
    is_trusted,
    name_key,
    pinyin_keys,
    resident_id_valid,
    score,
    split_chinese_name,
)
from domain.orders import PatientIdentifier


def person(name: str, sex: str = "M", born: date | None = date(1970, 5, 1), phone: str = "",
           ids: dict[str, str] | None = None) -> PersonFacts:
    return PersonFacts(name=name, sex=sex, birth_date=born, phone=phone,
                       identifiers=[PatientIdentifier(system=s, value=v) for s, v in (ids or {}).items()])


@pytest.mark.parametrize("name,key", [
    ("张三", "zhangsan"), ("ZHANG SAN", "zhangsan"), ("Zhang, San", "zhangsan"), ("欧阳娜娜", "ouyangnana"),
    ("单田芳", "shantianfang"), ("曾小贤", "zengxiaoxian"), ("吕布", "lvbu"), ("Lü Bu", "lvbu"), ("章三", "zhangsan"),
])
def test_name_keys(name: str, key: str) -> None:
    assert name_key(name) == key


def test_compound_surnames_and_order() -> None:
    assert split_chinese_name("欧阳娜娜") == ("欧阳", "娜娜")
    assert split_chinese_name("张三") == ("张", "三")
    assert pinyin_keys("San Zhang") == {"sanzhang", "zhangsan"}


def test_same_person_written_three_ways_reaches_review() -> None:
    base = person("张三", phone="13800000000")
    for other in (person("张三"), person("ZHANG SAN"), person("章三"), person("San Zhang")):
        result = score(base, other)
        assert result.review, (other.name, result)
    assert score(base, person("张三")).score > score(base, person("章三")).score > score(base, person("San Zhang")).score


def test_weak_evidence_stays_below_the_threshold() -> None:
    base = person("张三")
    assert not score(base, person("李四")).review  # same birth date and sex only
    assert not score(base, person("张三", born=date(1981, 2, 3))).review  # same name, nothing else
    assert not score(base, person("张三", sex="F", born=date(1970, 5, 2))).review
    assert score(base, person("李四")).score < REVIEW_THRESHOLD


def test_day_month_swap_and_phone_add_evidence() -> None:
    base = person("张三", born=date(1970, 5, 1), phone="+86 138-0000-0000")
    swapped = person("张三", born=date(1970, 1, 5), phone="13800000000")
    result = score(base, swapped)
    assert "birth date with day and month swapped" in result.reasons and "same phone" in result.reasons
    assert result.review


def test_twins_with_different_id_cards_are_kept_apart() -> None:
    a = person("张大宝", phone="13800000000", ids={"ID_CARD": "110101197005010013"})
    b = person("张大宝", phone="13800000000", ids={"ID_CARD": "110101197005010021"})
    assert not score(a, b).review
    assert "different identity document numbers" in score(a, b).reasons


def test_stored_people_compare_by_their_keys() -> None:
    """Stored people carry blind indexes, not numbers (security.field_crypto): keys meet keys."""
    new = person("张大宝", phone="13800000000", ids={"ID_CARD": "110101197005010013"}).model_copy(
        update={"phone_key": "k-phone", "identifier_keys": [("ID_CARD", "k-card-1")]})
    same = PersonFacts(name="张大宝", sex="M", birth_date=date(1970, 5, 1), phone_key="k-phone",
                       identifier_keys=[("ID_CARD", "k-card-1")])
    twin = same.model_copy(update={"identifier_keys": [("ID_CARD", "k-card-2")]})
    assert "same phone" in score(new, same).reasons and score(new, same).review
    assert "different identity document numbers" in score(new, twin).reasons and not score(new, twin).review
    # A number typed with spaces or a lower-case x is the same number, not a different document.
    spaced = person("张大宝", ids={"ID_CARD": "110101 19700501 001x"})
    assert "different identity document numbers" not in score(spaced, person("张大宝", ids={
        "ID_CARD": "11010119700501001X"})).reasons


def test_trusted_domains() -> None:
    assert is_trusted("ID_CARD") and is_trusted("MRN:CAMPUS2") and is_trusted("SOME_HIS")
    assert not is_trusted("HOSPITAL_CARD")


def test_resident_id_check_digit() -> None:
    assert resident_id_valid("110101197005010013") and resident_id_valid("440304198503120048")
    assert not resident_id_valid("110101197005010014") and not resident_id_valid("1101011970")


def test_resident_id_carries_birth_date_and_sex() -> None:
    from domain.empi import resident_id_facts

    assert resident_id_facts("110101197005010013") == (date(1970, 5, 1), "M")
    assert resident_id_facts("110101198002290026") == (date(1980, 2, 29), "F")
    assert resident_id_facts("110101197005010014") == (None, "")  # bad check digit: tells nothing
