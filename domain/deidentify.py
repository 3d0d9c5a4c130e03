"""De-identification of records leaving the center (R10.3, R10.3.4): pseudonyms, shifted dates, ages.

One `Pseudonymizer` per export: a random secret and a random day offset that live
only while the export is built and are then forgotten, so the same patient gets
the same pseudonym (and every date the same shift) inside one export, while two
exports cannot be linked to each other or back to the person.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta

# Shifts shorter than a month would leave dates almost as telling as the real ones.
MIN_SHIFT_DAYS, MAX_SHIFT_DAYS = 30, 365
OLDEST_AGE = 90  # ages of 90 and over are reported as "90+" (rare enough to identify)
_DT = re.compile(r"^(\d{8})(.*)$")


@dataclass
class Pseudonymizer:
    key: bytes = field(repr=False)
    day_offset: int

    @classmethod
    def fresh(cls) -> "Pseudonymizer":
        days = MIN_SHIFT_DAYS + secrets.randbelow(MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1)
        return cls(key=secrets.token_bytes(32), day_offset=-days if secrets.randbelow(2) else days)

    def _mac(self, kind: str, value: str) -> bytes:
        return hmac.new(self.key, f"{kind}|{value}".encode("utf-8"), hashlib.sha256).digest()

    def pseudonym(self, kind: str, value: str, prefix: str = "ANON") -> str:
        """Stable within this export, unlinkable outside it: PREFIX-<12 hex>."""
        return f"{prefix}-{self._mac(kind, value)[:6].hex().upper()}"

    def uid(self, uid: str) -> str:
        """A new UID under the UUID-derived root 2.25 (PS3.5 B.2), the same for the same input UID."""
        return "2.25." + str(int.from_bytes(self._mac("uid", uid)[:16], "big"))

    def shift(self, d: date) -> date:
        return d + timedelta(days=self.day_offset)

    def shift_da(self, text: str) -> str:
        """DICOM DA `YYYYMMDD` shifted; anything else (empty, malformed) becomes empty."""
        text = text.strip()
        try:
            return self.shift(date(int(text[:4]), int(text[4:6]), int(text[6:8]))).strftime("%Y%m%d") if len(text) == 8 else ""
        except ValueError:
            return ""

    def shift_dt(self, text: str) -> str:
        """DICOM DT: the date part shifted, time and offset kept; a year-only DT becomes empty."""
        m = _DT.match(text.strip())
        if not m:
            return ""
        shifted = self.shift_da(m.group(1))
        return shifted + m.group(2) if shifted else ""


def age_at(birth: date, on: date) -> str:
    """Whole years at `on`, as text; "90+" from OLDEST_AGE on."""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{OLDEST_AGE}+" if years >= OLDEST_AGE else str(max(years, 0))


def scrub(text: str, identifiers: list[str], placeholder: str = "[removed]") -> str:
    """Remove known identifiers (the patient's name, IDs, phone) from free text, longest first."""
    for ident in sorted({i.strip() for i in identifiers if i and len(i.strip()) >= 2}, key=len, reverse=True):
        text = re.sub(re.escape(ident), placeholder, text, flags=re.IGNORECASE)
    return text
