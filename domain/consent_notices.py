"""The texts a patient signs at check-in (R6.1.4), and the hash that says which text was signed.

The check-in page shows these texts above the signature pad; the upload of the signature
records the SHA-256 of exactly the texts shown (`notice_sha256`), so a later change of
wording never makes an old signature appear to cover the new text. Changing a text is a
code change reviewed like any other; its hash changes with it.
"""
from __future__ import annotations

import hashlib
import json

from domain.booking.check_in import CheckInNeed

LANGS = ("zh-CN", "en")

NOTICE_TEXTS: dict[CheckInNeed, dict[str, str]] = {
    CheckInNeed.contrast_consent: {
        "zh-CN": "本人已知晓本次检查需注射对比剂，可能出现恶心、皮疹、过敏反应，极少数可发生严重过敏或肾功能损害；"
                 "已如实告知过敏史、肾功能及用药情况，同意使用对比剂。",
        "en": "I understand this exam needs an injected contrast agent, which may cause nausea, rash or an allergic "
              "reaction, and rarely a severe allergy or kidney injury. I have told staff my allergies, kidney "
              "function and medicines, and I agree to the contrast agent.",
    },
    CheckInNeed.mr_safety_screening: {
        "zh-CN": "本人已如实回答磁共振安全筛查：无心脏起搏器、人工耳蜗、金属异物或不兼容植入物，或已告知工作人员；"
                 "已取下随身金属物品。",
        "en": "I have answered the MR safety screening truthfully: I have no pacemaker, cochlear implant, metal "
              "fragments or incompatible implant, or I have told staff about it; I have removed metal objects.",
    },
    CheckInNeed.radiation_notice: {
        "zh-CN": "本人已知晓本次检查使用电离辐射，已被询问是否怀孕或可能怀孕，并如实告知。",
        "en": "I understand this exam uses ionising radiation. I was asked whether I am or may be pregnant "
              "and answered truthfully.",
    },
}


def notice_text(need: CheckInNeed | str, lang: str) -> str:
    return NOTICE_TEXTS[CheckInNeed(need)][lang if lang in LANGS else LANGS[0]]


def notice_sha256(needs: list[str], lang: str) -> str:
    """SHA-256 over the shown texts, in the given order, as canonical JSON (language included)."""
    lang = lang if lang in LANGS else LANGS[0]
    shown = [{"notice": CheckInNeed(n).value, "lang": lang, "text": notice_text(n, lang)} for n in needs]
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()
