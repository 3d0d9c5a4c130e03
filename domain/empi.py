"""EMPI matching: is this the same person? Pure functions, no database.

One RadLoop patient ID per person, many identifiers in named domains. Two rules:
- an identifier in a *trusted* domain (assigned once per person: resident ID card,
  passport, permits, a campus MRN) links exactly;
- otherwise a weighted score over name, birth date, sex and phone decides whether
  a registrar should look at the pair ("possible same person"). Nothing merges by
  score alone: the cost of a wrong merge (one person's images in another's
  record) is far above the cost of a review.
Names are compared in characters and in toneless pinyin, so 张三, ZHANG SAN,
"San Zhang" and the homophone 章三 all meet; family names with a surname-only
reading (单 shan, 曾 zeng, ...) and two-character surnames (欧阳) are read right.
Personal numbers and phones of stored people are not kept in clear (security.field_crypto):
the registry hands their blind indexes (`phone_key`, `identifier_keys`), compared for equality.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date
from difflib import SequenceMatcher
from functools import lru_cache

from pydantic import BaseModel, Field
from pypinyin import lazy_pinyin

from domain.orders import PatientIdentifier


class IdentifierDomain(BaseModel):
    code: str
    name: str
    trusted: bool = Field(description="Issued once per person: an exact match links the records")


DOMAINS: dict[str, IdentifierDomain] = {d.code: d for d in [
    IdentifierDomain(code="MRN", name="Medical record number (per campus: MRN or MRN:<campus>)", trusted=True),
    IdentifierDomain(code="ID_CARD", name="Resident identity card 居民身份证", trusted=True),
    IdentifierDomain(code="PASSPORT", name="Passport 护照", trusted=True),
    IdentifierDomain(code="HK_MACAU_PERMIT", name="Mainland travel permit for HK/Macau residents 港澳居民来往内地通行证",
                     trusted=True),
    IdentifierDomain(code="TAIWAN_PERMIT", name="Mainland travel permit for Taiwan residents 台湾居民来往大陆通行证",
                     trusted=True),
    IdentifierDomain(code="FOREIGN_RESIDENCE_PERMIT", name="Foreigner's permanent residence ID 外国人永久居留身份证",
                     trusted=True),
    IdentifierDomain(code="INSURANCE", name="Medical insurance number 医保号", trusted=True),
    # A hospital card is handed across the family at the registration desk: never proof of identity.
    IdentifierDomain(code="HOSPITAL_CARD", name="Hospital visit card 就诊卡", trusted=False),
]}

# HL7 CX.5 identifier type codes that name one of our domains (PID-3 mapping).
IDENTIFIER_TYPE_DOMAINS = {
    "NNCHN": "ID_CARD", "NI": "ID_CARD", "PPN": "PASSPORT", "HKMO": "HK_MACAU_PERMIT", "TW": "TAIWAN_PERMIT",
    "PRC": "FOREIGN_RESIDENCE_PERMIT", "PRN": "FOREIGN_RESIDENCE_PERMIT", "SN": "INSURANCE", "HC": "HOSPITAL_CARD",
}

REVIEW_THRESHOLD = 0.6


def is_trusted(system: str) -> bool:
    """Known untrusted domains are listed; any other domain (an HIS's own MRNs) is assigned once per person."""
    base = system.split(":", 1)[0].upper()
    domain = DOMAINS.get(base)
    return domain.trusted if domain else True


class PersonFacts(BaseModel):
    """What a registration says about a person (from PID, REST or the registrar)."""

    identifiers: list[PatientIdentifier] = Field(default_factory=list)
    name: str = ""
    alternate_names: list[str] = Field(default_factory=list)
    sex: str = ""
    birth_date: date | None = None
    phone: str = ""
    # Stored people carry no clear numbers (security.field_crypto): their phone and identifiers are compared
    # through blind indexes. When both sides carry keys, the keys are compared instead of the numbers.
    phone_key: str = Field("", description="Blind index of the phone")
    identifier_keys: list[tuple[str, str]] = Field(default_factory=list,
                                                   description="(domain, blind index) of each identifier")

    @property
    def complete(self) -> bool:
        """Enough to register a person never seen before."""
        return bool(self.name and self.sex and self.birth_date)


class MatchScore(BaseModel):
    score: float
    reasons: list[str]

    @property
    def review(self) -> bool:
        return self.score >= REVIEW_THRESHOLD


# ---- names ----------------------------------------------------------------------------

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
COMPOUND_SURNAMES = (
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "司徒", "夏侯", "令狐",
    "端木", "宇文", "轩辕", "万俟", "澹台", "呼延", "南宫", "独孤", "西门", "闻人", "百里", "钟离",
)
# Characters read differently as a family name than in ordinary words.
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "朴": "piao", "区": "ou", "查": "zha", "盖": "ge",
    "乐": "yue", "缪": "miao", "覃": "qin", "翟": "zhai", "种": "chong", "重": "chong", "员": "yun",
    "秘": "bi", "召": "shao", "繁": "po", "句": "gou", "尉迟": "yuchi", "万俟": "moqi", "长孙": "zhangsun",
    "宓": "fu", "牟": "mu", "黑": "he", "折": "she", "阚": "kan", "都": "du", "藏": "zang", "沈": "shen",
}


def split_chinese_name(name: str) -> tuple[str, str]:
    """(family, given) of a name written in characters."""
    compact = re.sub(r"\s+", "", name)
    for surname in COMPOUND_SURNAMES:
        if compact.startswith(surname) and len(compact) > len(surname):
            return surname, compact[len(surname):]
    return compact[:1], compact[1:]


def _ascii_fold(text: str) -> str:
    text = text.replace("ü", "v").replace("Ü", "v")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@lru_cache(maxsize=8192)
def pinyin_keys(name: str) -> frozenset[str]:
    """Toneless pinyin spellings of a name, family-first and given-first (lowercase, no spaces)."""
    if not name.strip():
        return frozenset()
    if CJK.search(name):
        family, given = split_chinese_name(name)
        fam = SURNAME_READINGS.get(family) or "".join(lazy_pinyin(family))
        giv = "".join(lazy_pinyin(given))
        fam, giv = re.sub(r"[^a-z]", "", fam.lower()), re.sub(r"[^a-z]", "", giv.lower())
        return frozenset({fam + giv, giv + fam})
    tokens = [t for t in re.split(r"[^a-z]+", _ascii_fold(name).lower()) if t]
    return frozenset({"".join(tokens), "".join(reversed(tokens))}) if tokens else frozenset()


@lru_cache(maxsize=8192)
def name_key(name: str) -> str:
    """One blocking key per name (family-first pinyin), stored on the patient row for candidate search."""
    if CJK.search(name):
        family, given = split_chinese_name(name)
        fam = SURNAME_READINGS.get(family) or "".join(lazy_pinyin(family))
        return re.sub(r"[^a-z]", "", (fam + "".join(lazy_pinyin(given))).lower())
    tokens = [t for t in re.split(r"[^a-z]+", _ascii_fold(name).lower()) if t]
    return "".join(tokens)


def _compact(name: str) -> str:
    return re.sub(r"\s+", "", name)


def name_score(a: PersonFacts, b: PersonFacts) -> tuple[float, str | None]:
    names_a = [n for n in [a.name, *a.alternate_names] if n]
    names_b = [n for n in [b.name, *b.alternate_names] if n]
    if not names_a or not names_b:
        return 0.0, None
    for x in names_a:
        for y in names_b:
            if CJK.search(x) and _compact(x) == _compact(y):
                return 0.40, "same name"
    keys_a = set().union(*(pinyin_keys(n) for n in names_a))
    keys_b = set().union(*(pinyin_keys(n) for n in names_b))
    if {name_key(n) for n in names_a} & {name_key(n) for n in names_b}:
        return 0.30, "same name in pinyin"
    if keys_a & keys_b:
        return 0.25, "same name in pinyin, family and given name swapped"
    best = max(SequenceMatcher(None, x, y).ratio() for x in keys_a for y in keys_b) if keys_a and keys_b else 0
    if best >= 0.85:
        return 0.15, f"similar name ({best:.2f})"
    return 0.0, None


def _phone(p: str) -> str:
    digits = re.sub(r"\D", "", p)
    return digits[-11:] if len(digits) >= 7 else ""


def _same_phone(a: PersonFacts, b: PersonFacts) -> bool:
    if a.phone_key and b.phone_key:
        return a.phone_key == b.phone_key
    return bool(_phone(a.phone)) and _phone(a.phone) == _phone(b.phone)


def _trusted_numbers(f: PersonFacts, keyed: bool) -> set[tuple[str, str]]:
    """(DOMAIN, number or its blind index) of the identifiers assigned once per person."""
    if keyed:
        return {(s.upper(), k) for s, k in f.identifier_keys if is_trusted(s)}
    return {(i.system.upper(), re.sub(r"[\s\-]", "", i.value).upper())
            for i in f.identifiers if is_trusted(i.system)}


def score(a: PersonFacts, b: PersonFacts) -> MatchScore:
    """Weighted evidence that a and b are one person (0 = none, 1 = every field agrees)."""
    total, reasons = 0.0, []
    points, why = name_score(a, b)
    total += points
    if why:
        reasons.append(why)
    if a.birth_date and b.birth_date:
        if a.birth_date == b.birth_date:
            total += 0.30
            reasons.append("same birth date")
        elif a.birth_date.year == b.birth_date.year and (a.birth_date.month, a.birth_date.day) == (
                b.birth_date.day, b.birth_date.month):
            total += 0.12
            reasons.append("birth date with day and month swapped")
    if a.sex in ("M", "F") and b.sex in ("M", "F"):
        if a.sex == b.sex:
            total += 0.10
            reasons.append("same sex")
        else:
            total -= 0.25
            reasons.append("different sex")
    if _same_phone(a, b):
        total += 0.20
        reasons.append("same phone")
    # Twins share surname, birth date and the parents' phone, but never an ID card or passport number.
    keyed = bool(a.identifier_keys) and bool(b.identifier_keys)
    ids_a, ids_b = _trusted_numbers(a, keyed), _trusted_numbers(b, keyed)
    shared_domains = {s for s, _ in ids_a} & {s for s, _ in ids_b}
    if any({v for s, v in ids_a if s == d} != {v for s, v in ids_b if s == d}
           for d in shared_domains if d in ("ID_CARD", "PASSPORT")):
        total -= 0.5
        reasons.append("different identity document numbers")
    return MatchScore(score=round(max(0.0, min(1.0, total)), 3), reasons=reasons)


def resident_id_valid(value: str) -> bool:
    """GB 11643 check digit of an 18-character resident ID card number."""
    if not re.fullmatch(r"\d{17}[\dXx]", value):
        return False
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(value[:17], weights)) % 11]
    return value[17].upper() == check


def resident_id_facts(value: str) -> tuple[date | None, str]:
    """Birth date and sex written into an 18-character resident ID number (digits 7-14; 17th odd = male)."""
    if not resident_id_valid(value):
        return None, ""
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None, ""
    return born, "M" if int(value[16]) % 2 else "F"
