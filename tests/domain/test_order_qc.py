"""Order QC rules (R8.1), pure."""
from __future__ import annotations

import pytest

from domain.order_qc import OrderFacts, check_order


def facts(**kw) -> OrderFacts:
    base = dict(sex="M", procedure_code="CT-CHEST", procedure_name="胸部CT", body_part="CHEST", modality="CT",
                purpose="排除肺部感染", diagnosis="肺炎?", history="咳嗽")
    return OrderFacts(**(base | kw))


def codes(**kw) -> set[str]:
    return {i.code for i in check_order(facts(**kw))}


def test_a_good_order_passes() -> None:
    assert check_order(facts()) == []


@pytest.mark.parametrize("purpose,code", [("", "purpose_missing"), ("检查", "purpose_unclear"), ("check", "purpose_unclear"), ("?", "purpose_unclear")])
def test_purpose_must_be_clear(purpose: str, code: str) -> None:
    assert codes(purpose=purpose) == {code}


def test_diagnosis_is_required() -> None:
    assert codes(diagnosis=" ") == {"diagnosis_missing"}


@pytest.mark.parametrize("name", ["经阴道超声", "Transvaginal ultrasound", "子宫附件彩超", "Obstetric US"])
def test_male_with_female_only_procedure(name: str) -> None:
    assert codes(procedure_name=name, modality="US") == {"sex_procedure_mismatch"}


def test_male_with_pregnancy_purpose() -> None:
    assert codes(purpose="排除宫外孕") == {"sex_clinical_mismatch"}


def test_female_with_male_only_procedure() -> None:
    assert codes(sex="F", procedure_name="前列腺MRI", modality="MR") == {"sex_procedure_mismatch"}


def test_female_pregnancy_is_fine_and_unknown_sex_is_not_judged() -> None:
    assert codes(sex="F", procedure_name="经阴道超声", purpose="早孕检查确认孕囊位置") == set()
    assert codes(sex="U", procedure_name="经阴道超声", purpose="排除宫外孕") == set()
