"""Display masking by role (R10.3.4 (5), R10.3 "minimum necessary"): 张三丰 -> 张*丰, 110101********1234, 138****5678.

Who sees what in full is configuration (`RADLOOP_MASK_FULL_NAME_ROLES`,
`RADLOOP_MASK_FULL_IDENTIFIER_ROLES`); the default is safe: a role not listed,
or one this build does not know, sees masked values. Names are for the people
who care for the patient; ID numbers and phones for those who verify identity
or call the patient (registration, nursing, the ordering clinician).

`mask_patient_data` walks a response (dicts and lists) and masks the fields it
knows by name, so a route masks its whole answer in one call whatever its shape.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from core.config import Settings, get_settings
from domain.queueing.calling import mask_name

NAME_KEYS = frozenset({"patient_name", "PatientName"})
ID_NUMBER_KEYS = frozenset({"id_number", "id_card", "patient_id_number", "insurance_number"})
PHONE_KEYS = frozenset({"phone", "patient_phone", "mobile", "contact_phone"})
# Identifier domains that are personal numbers (domain.empi.DOMAINS names), unlike the center's own record
# numbers (MRN, hospital card): masked on display here, and never stored in clear (security.field_crypto).
PERSONAL_ID_SYSTEMS = frozenset({
    "ID_CARD", "IDCARD", "RESIDENT_ID", "PASSPORT", "HK_MACAU_PERMIT", "TAIWAN_PERMIT",
    "FOREIGN_RESIDENCE_PERMIT", "INSURANCE", "SSN", "PHONE",
})

M = TypeVar("M", bound=BaseModel)

__all__ = ["DisplayMasking", "is_personal_number", "mask_id_number", "mask_name", "mask_phone",
           "mask_patient_data", "masked_model"]


def is_personal_number(system: str) -> bool:
    """Whether identifiers of this domain (`ID_CARD`, `INSURANCE:<region>`, ...) are personal numbers."""
    return system.split(":", 1)[0].strip().upper() in PERSONAL_ID_SYSTEMS


def mask_id_number(value: str) -> str:
    """110101199003071234 -> 1101**********1234: region and check digits stay, the birth date goes."""
    v = value.strip()
    if len(v) >= 15:
        return v[:4] + "*" * (len(v) - 8) + v[-4:]
    if len(v) >= 6:
        return "*" * (len(v) - 4) + v[-4:]
    return "*" * len(v)


def mask_phone(value: str) -> str:
    """13812345678 -> 138****5678; +86 13812345678 -> +86 138****5678; short numbers keep their last 2."""
    v = value.strip()
    if "*" in v:
        return v  # already masked (the stored display form): masking it again would hide the last digits
    digits = [i for i, c in enumerate(v) if c.isdigit()]
    if len(digits) >= 11:
        hide = set(digits[-8:-4])
    elif len(digits) >= 5:
        hide = set(digits[:-2])
    else:
        hide = set(digits)
    return "".join("*" if i in hide else c for i, c in enumerate(v))


def _roles(csv: str) -> frozenset[str]:
    return frozenset(r.strip() for r in csv.split(",") if r.strip())


@dataclass(frozen=True)
class DisplayMasking:
    """Which roles see names, and which see ID numbers and phones, in full."""

    full_name_roles: frozenset[str]
    full_identifier_roles: frozenset[str]

    @classmethod
    def from_settings(cls, s: Settings | None = None) -> "DisplayMasking":
        s = s or get_settings()
        return cls(_roles(s.mask_full_name_roles), _roles(s.mask_full_identifier_roles))

    def masks_names(self, role: str) -> bool:
        return role not in self.full_name_roles

    def masks_identifiers(self, role: str) -> bool:
        return role not in self.full_identifier_roles


def _mask_identifiers(items: Iterable[Any]) -> list[Any]:
    out = []
    for item in items:
        if isinstance(item, dict) and is_personal_number(str(item.get("system", ""))) \
                and isinstance(item.get("value"), str):
            item = {**item, "value": mask_id_number(item["value"])}
        out.append(item)
    return out


def mask_patient_data(data: Any, role: str, policy: DisplayMasking | None = None, _in_patient: bool = False) -> Any:
    """A copy of `data` with the patient's name, ID numbers and phones masked as `role` must see them."""
    policy = policy or DisplayMasking.from_settings()
    names, idents = policy.masks_names(role), policy.masks_identifiers(role)
    if not (names or idents):
        return data
    if isinstance(data, list):
        return [mask_patient_data(x, role, policy, _in_patient) for x in data]
    if not isinstance(data, dict):
        return data
    out: dict[Any, Any] = {}
    for key, value in data.items():
        if isinstance(value, str) and names and (key in NAME_KEYS or (_in_patient and key == "name")):
            value = mask_name(value)
        elif isinstance(value, str) and idents and key in ID_NUMBER_KEYS:
            value = mask_id_number(value)
        elif isinstance(value, str) and idents and key in PHONE_KEYS:
            value = mask_phone(value)
        elif idents and key == "identifiers" and isinstance(value, list):
            value = _mask_identifiers(value)
        elif isinstance(value, (dict, list)):
            value = mask_patient_data(value, role, policy, _in_patient=key == "patient")
        out[key] = value
    return out


def masked_model(model: M, role: str, policy: DisplayMasking | None = None) -> M:
    """The same response model with its patient fields masked for `role`."""
    policy = policy or DisplayMasking.from_settings()
    if not (policy.masks_names(role) or policy.masks_identifiers(role)):
        return model
    return type(model).model_validate(mask_patient_data(model.model_dump(), role, policy))
