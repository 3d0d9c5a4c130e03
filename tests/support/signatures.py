"""A handwritten-looking signature PNG, and uploading it as the check-in pad would (services.consent_signatures)."""
from __future__ import annotations

import io
from datetime import datetime, timezone

from PIL import Image, ImageDraw
from sqlmodel import Session

from core.config import get_settings
from core.db import get_engine
from domain.tables import User
from services import consent_signatures
from services.consent_signatures import SignatureFacts, SignatureStored


def signature_png(width: int = 600, height: int = 200, ink: bool = True, fmt: str = "PNG") -> bytes:
    """Strokes on a transparent pad, as a canvas exports them (`fmt` JPEG/GIF for refusals)."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    if ink:
        ImageDraw.Draw(img).line([(20, 150), (120, 40), (220, 160), (420, 50)], fill=(17, 17, 17, 255), width=3)
    out = io.BytesIO()
    (img.convert("RGB") if fmt == "JPEG" else img).save(out, fmt)
    return out.getvalue()


def store_signature(accession: str, png: bytes, notices: list[str], by: str = "u-registrar") -> SignatureStored:
    s = get_settings()
    with Session(get_engine(), expire_on_commit=False) as db:
        return consent_signatures.store(
            db, png, SignatureFacts(accession_number=accession, notices=notices), db.get(User, by),
            datetime.now(timezone.utc), s.data_dir, s.consent_signature_max_bytes, s.consent_signature_max_pixels)
