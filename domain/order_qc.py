"""Order QC rules (R8.1): completeness, a clear purpose, sex-vs-procedure logic.

Pure functions over the order's fields so the rules are unit-tested without a
database and run inside an activity before anything is scheduled.
"""
from __future__ import annotations

import re

from pydantic import BaseModel

# Terms that only make sense for one sex, in English and Chinese.
FEMALE_ONLY = (
    "transvaginal", "vaginal", "pregnan", "obstetric", "uterus", "uterine", "ovary", "ovarian",
    "fetal", "gestation", "endometri", "mammogra", "hysterosalpingo",
    "经阴道", "阴道", "妊娠", "怀孕", "孕", "产科", "子宫", "卵巢", "胎儿", "乳腺钼靶",
)
MALE_ONLY = ("prostat", "testis", "testic", "scrot", "前列腺", "睾丸", "阴囊")
VAGUE_PURPOSES = {"check", "exam", "examination", "test", "routine", "?", "检查", "复查", "看看", "查"}


class QCIssue(BaseModel):
    code: str
    field: str
    message: str


class OrderFacts(BaseModel):
    """The fields the rules read (a view of the order row)."""

    sex: str
    procedure_code: str
    procedure_name: str
    body_part: str
    modality: str
    purpose: str
    diagnosis: str
    history: str


def _mentions(text: str, terms: tuple[str, ...]) -> str | None:
    low = text.lower()
    return next((t for t in terms if t in low), None)


def check_order(o: OrderFacts) -> list[QCIssue]:
    issues: list[QCIssue] = []
    purpose = o.purpose.strip()
    if not purpose:
        issues.append(QCIssue(code="purpose_missing", field="clinical.purpose", message="exam purpose is required"))
    elif purpose.lower() in VAGUE_PURPOSES or len(re.sub(r"\s", "", purpose)) < 2:
        issues.append(QCIssue(code="purpose_unclear", field="clinical.purpose", message=f"exam purpose {purpose!r} is not specific"))
    if not o.diagnosis.strip():
        issues.append(QCIssue(code="diagnosis_missing", field="clinical.diagnosis", message="clinical diagnosis is required"))
    procedure_text = f"{o.procedure_name} {o.procedure_code} {o.body_part}"
    clinical_text = f"{o.purpose} {o.diagnosis} {o.history}"
    if o.sex == "M":
        hit = _mentions(procedure_text, FEMALE_ONLY)
        if hit:
            issues.append(QCIssue(code="sex_procedure_mismatch", field="procedure", message=f"male patient with a female-only procedure ({hit})"))
        hit = _mentions(clinical_text, FEMALE_ONLY)
        if hit:
            issues.append(QCIssue(code="sex_clinical_mismatch", field="clinical", message=f"male patient with a female-only complaint or purpose ({hit})"))
    if o.sex == "F":
        hit = _mentions(procedure_text, MALE_ONLY)
        if hit:
            issues.append(QCIssue(code="sex_procedure_mismatch", field="procedure", message=f"female patient with a male-only procedure ({hit})"))
        hit = _mentions(clinical_text, MALE_ONLY)
        if hit:
            issues.append(QCIssue(code="sex_clinical_mismatch", field="clinical", message=f"female patient with a male-only complaint or purpose ({hit})"))
    return issues
