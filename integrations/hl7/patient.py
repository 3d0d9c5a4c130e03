"""PID -> the patient facts RadLoop keeps, shared by ADT and order messages.

Mapping (documented here because every HIS fills PID a little differently):
- PID-3 (each repetition) -> identifier; its domain (`system`) is the EMPI domain
  its type code CX.5 names (NNCHN -> ID_CARD, PPN -> PASSPORT, ...: domain.empi),
  else the assigning authority CX.4, else CX.5, else `MRN` (what a bare HIS number
  is, and what REST callers send); an ID card number must pass its check digit;
- PID-5 first repetition -> name: family + given, joined without a space when
  either is written in Chinese characters (张 + 三 = 张三), with one otherwise;
  further repetitions (often pinyin) are kept as alternate names for matching;
- PID-7 -> birth date (first 8 digits), PID-8 -> sex (A -> O, N -> U),
  PID-13 first repetition -> phone (XTN.12, else XTN.1 digits, else XTN.7).
"""
from __future__ import annotations

import re
from datetime import date

from domain.empi import CJK, IDENTIFIER_TYPE_DOMAINS, PersonFacts, resident_id_facts, resident_id_valid
from domain.orders import PatientIdentifier
from integrations.hl7.parse import ErrorCode, Location, ParsedMessage, Seg, reject
from security.field_crypto import display_identifier

SEX_CODES = {"M": "M", "F": "F", "O": "O", "U": "U", "A": "O", "N": "U"}


def join_name(family: str, given: str) -> str:
    if CJK.search(family + given):
        return f"{family}{given}".replace(" ", "")
    return " ".join(p for p in (family, given) if p)


def hl7_date(value: str, location: Location) -> date | None:
    digits = value.strip()[:8]
    if not digits:
        return None
    if not re.fullmatch(r"\d{8}", digits):
        raise reject("AE", ErrorCode.data_type_error, f"{location} {value!r} is not a date (YYYYMMDD)", location)
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise reject("AE", ErrorCode.data_type_error, f"{location} {value!r} is not a valid date", location) from None


def identifiers_from(msg: ParsedMessage, reps: list[str], location: Location) -> list[PatientIdentifier]:
    """CX repetitions (PID-3, MRG-1) -> identifiers in EMPI domains; AE for unreadable ones."""
    identifiers: list[PatientIdentifier] = []
    for er7 in reps:
        value = msg.split(er7, 1)
        if not value:
            continue
        id_type = msg.split(er7, 5).upper()
        system = IDENTIFIER_TYPE_DOMAINS.get(id_type) or msg.split(er7, 4) or id_type or "MRN"
        if len(value) > 128 or len(system) > 64:
            raise reject("AE", ErrorCode.data_type_error, f"{location} identifier too long", location)
        if system == "ID_CARD" and not resident_id_valid(value):
            shown = display_identifier(system, value)
            raise reject("AE", ErrorCode.data_type_error,
                         f"{location} resident ID card number {shown!r} fails its check digit", location)
        identifiers.append(PatientIdentifier(system=system, value=value))
    return identifiers


def patient_facts(msg: ParsedMessage, pid: Seg | None) -> PersonFacts:
    """Read one PID; raises HL7Reject(AE) for values that cannot be read."""
    if pid is None:
        raise reject("AE", ErrorCode.segment_sequence, "PID segment is required", Location("PID"))
    identifiers = identifiers_from(msg, msg.reps(pid, 3), Location("PID", 3))
    names = [join_name(msg.split(er7, 1), msg.split(er7, 2)) for er7 in msg.reps(pid, 5)]
    names = [n for n in names if n]
    sex_raw = msg.get(pid, 8).upper()
    if sex_raw and sex_raw not in SEX_CODES:
        raise reject("AE", ErrorCode.table_value_not_found, f"PID-8 sex {sex_raw!r} is not M/F/O/U/A/N",
                     Location("PID", 8))
    phone_er7 = (msg.reps(pid, 13) or [""])[0]
    phone = msg.split(phone_er7, 12) or msg.split(phone_er7, 1) or msg.split(phone_er7, 7)
    sex = SEX_CODES.get(sex_raw, "")
    born = hl7_date(msg.get(pid, 7), Location("PID", 7))
    # The ID card number carries birth date and sex: a contradiction is a data error at the source,
    # a gap is filled from it.
    for ident in identifiers:
        if ident.system != "ID_CARD":
            continue
        card_born, card_sex = resident_id_facts(ident.value)
        if born and card_born and born != card_born:
            raise reject("AE", ErrorCode.data_type_error,
                         f"PID-7 birth date {born.isoformat()} contradicts the resident ID card ({card_born.isoformat()})",
                         Location("PID", 7))
        if sex in ("M", "F") and card_sex and sex != card_sex:
            raise reject("AE", ErrorCode.data_type_error,
                         f"PID-8 sex {sex} contradicts the resident ID card ({card_sex})", Location("PID", 8))
        born, sex = born or card_born, sex or card_sex
    return PersonFacts(
        identifiers=identifiers,
        name=names[0] if names else "",
        alternate_names=names[1:],
        sex=sex,
        birth_date=born,
        phone=re.sub(r"[^\d+]", "", phone),
    )
