"""Display masking by role (R10.3.4 (5)): names, ID numbers, phones; safe default for unknown roles."""
from __future__ import annotations

from security.masking import DisplayMasking, mask_id_number, mask_name, mask_patient_data, mask_phone

POLICY = DisplayMasking(full_name_roles=frozenset({"radiologist", "registrar"}),
                        full_identifier_roles=frozenset({"registrar"}))


def test_mask_values() -> None:
    assert mask_name("张某三") == "张*三" and mask_name("张三") == "张*" and mask_name("欧阳娜娜") == "欧**娜"
    assert mask_id_number("110101199003071234") == "1101**********1234"
    assert mask_id_number("11010119900307123X") == "1101**********123X"
    assert mask_id_number("G1234567") == "****4567" and mask_id_number("123") == "***"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "+86 138-****-5678"
    assert mask_phone("010-6512") == "***-**12" and mask_phone("110") == "***"


RESPONSE = {
    "patient_name": "张三丰", "procedure": {"name": "胸部CT平扫"},
    "patient": {"name": "张三丰", "phone": "13812345678",
                "identifiers": [{"system": "MRN", "value": "M001"}, {"system": "ID_CARD", "value": "110101199003071234"}]},
    "ordering": {"clinician_name": "孙医生"},
    "items": [{"context": {"patient_name": "李四", "id_number": "110101199003071234"}}],
}


def test_a_role_without_full_view_sees_every_known_field_masked() -> None:
    out = mask_patient_data(RESPONSE, "manager", POLICY)
    assert out["patient_name"] == "张*丰" and out["patient"]["name"] == "张*丰"
    assert out["patient"]["phone"] == "138****5678"
    assert out["patient"]["identifiers"] == [{"system": "MRN", "value": "M001"},
                                             {"system": "ID_CARD", "value": "1101**********1234"}]
    assert out["items"][0]["context"] == {"patient_name": "李*", "id_number": "1101**********1234"}
    # what is not the patient's stays as it was: procedure names, staff names
    assert out["procedure"]["name"] == "胸部CT平扫" and out["ordering"]["clinician_name"] == "孙医生"
    assert RESPONSE["patient_name"] == "张三丰"  # the input is not modified


def test_names_and_identifiers_are_granted_separately() -> None:
    reader = mask_patient_data(RESPONSE, "radiologist", POLICY)
    assert reader["patient_name"] == "张三丰" and reader["patient"]["phone"] == "138****5678"
    assert mask_patient_data(RESPONSE, "registrar", POLICY) == RESPONSE


def test_unknown_roles_and_the_default_configuration_mask(monkeypatch) -> None:
    assert mask_patient_data(RESPONSE, "intruder", POLICY)["patient_name"] == "张*丰"
    from core import config

    monkeypatch.setenv("RADLOOP_MASK_FULL_IDENTIFIER_ROLES", "registrar, nurse")
    config.reset_settings_cache()
    try:
        default = DisplayMasking.from_settings()
        assert not default.masks_names("clinician") and default.masks_names("auditor")
        assert default.masks_names("his_system") and default.masks_names("qc_officer")
        assert not default.masks_identifiers("nurse") and default.masks_identifiers("clinician")
    finally:
        config.reset_settings_cache()
