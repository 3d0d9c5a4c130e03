"""Handwritten consent signatures (R6.1.4): accept a PNG, store it by its hash, check it later.

The pad (or any client) uploads the image first and gets a reference; the check-in
update then carries only that reference and the image's SHA-256, so no image ever sits
in Temporal history. Storage is content-addressed (`<data_dir>/consent_signatures/<aa>/<sha256>.png`,
written once, atomically), and `verify` re-hashes the stored bytes, so what the consent
record names is provably what the patient drew.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import uuid
from datetime import datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session

from domain.booking.check_in import CheckInNeed
from domain.consent_notices import LANGS, notice_sha256
from domain.consent_tables import ConsentSignature
from domain.tables import ExamOrder, User
from services.errors import Invalid, NotFound

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_DATA_URL = re.compile(r"^data:image/png;base64,(?P<b64>[A-Za-z0-9+/=\s]+)$")


class SignatureFacts(BaseModel):
    """What the signature was drawn for: the exam, the notices shown above the pad, who signed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    accession_number: str = Field(min_length=1, max_length=32)
    notices: list[CheckInNeed] = Field(min_length=1, description="The notices shown above the pad")
    lang: str = Field("zh-CN", description="The language the notices were shown in")
    signer: str = Field("patient", pattern="^(patient|guardian)$")
    signer_name: str = Field("", max_length=100, description="Required when a guardian signs")

    @model_validator(mode="after")
    def _checks(self) -> "SignatureFacts":
        if self.lang not in LANGS:
            raise ValueError(f"lang must be one of {', '.join(LANGS)}")
        if self.signer == "guardian" and not self.signer_name:
            raise ValueError("a guardian's signature needs signer_name")
        return self

    @property
    def signer_label(self) -> str:
        return f"guardian ({self.signer_name})" if self.signer == "guardian" else "patient"


class SignatureIn(SignatureFacts):
    image: str = Field(description="data:image/png;base64,...")


class SignatureStored(BaseModel):
    signature_ref: str
    signature_sha256: str
    notice_sha256: str
    size_bytes: int
    width: int
    height: int


def store_dir(data_dir: Path) -> Path:
    return data_dir / "consent_signatures"


def path_of(data_dir: Path, sha256: str) -> Path:
    return store_dir(data_dir) / sha256[:2] / f"{sha256}.png"


def decode_data_url(url: str, max_bytes: int) -> bytes:
    """The PNG bytes of a `data:image/png;base64,` URL; Invalid with the reason otherwise."""
    if len(url) > (max_bytes * 4) // 3 + 64:  # checked before decoding anything
        raise Invalid(f"signature image is larger than {max_bytes // 1024} KB")
    m = _DATA_URL.match(url.strip())
    if m is None:
        raise Invalid("image must be a data URL of the form data:image/png;base64,...")
    try:
        return base64.b64decode(re.sub(r"\s", "", m["b64"]), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("image is not valid base64") from None


def check_png(data: bytes, max_bytes: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) of a real, complete PNG within the limits; Invalid naming what is wrong."""
    if len(data) > max_bytes:
        raise Invalid(f"signature image is {len(data)} bytes, more than the {max_bytes // 1024} KB allowed")
    if not data.startswith(PNG_MAGIC):
        raise Invalid("signature image is not a PNG (wrong file signature)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise Invalid(f"signature image is {img.format}, not PNG")
            width, height = img.size
            if width * height > max_pixels or width < 16 or height < 16:
                raise Invalid(f"signature image is {width}x{height} pixels: not a plausible signature pad size")
            img.verify()  # checksums and chunk structure
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # and the pixel data decodes to the end
            if _blank(img):
                raise Invalid("signature image is blank: nothing was drawn")
    except Invalid:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise Invalid(f"signature image is not a readable PNG: {err}") from None
    return width, height


def _blank(img: Image.Image) -> bool:
    """One colour and one opacity everywhere (a transparent pad's strokes show in alpha only)."""
    rgba = img.convert("RGBA")
    alpha, grey = rgba.getchannel("A").getextrema(), rgba.convert("L").getextrema()
    return alpha[0] == alpha[1] and grey[0] == grey[1]


def _write_once(path: Path, data: bytes) -> None:
    """Content-addressed: an existing file already holds these bytes (checked); else write atomically."""
    if path.exists():
        if hashlib.sha256(path.read_bytes()).hexdigest() == path.stem:
            return
        path.unlink()  # a damaged copy: replace it with the good bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def store(session: Session, data: bytes, facts: SignatureFacts, by: User, now: datetime, data_dir: Path,
          max_bytes: int, max_pixels: int) -> SignatureStored:
    """Validate the PNG, keep it under its hash and record who uploaded it for which exam and notices."""
    order = session.get(ExamOrder, facts.accession_number)
    if order is None:
        raise NotFound(f"no order {facts.accession_number}")
    width, height = check_png(data, max_bytes, max_pixels)
    digest = hashlib.sha256(data).hexdigest()
    _write_once(path_of(data_dir, digest), data)
    notices = [n.value for n in facts.notices]
    row = ConsentSignature(
        id=uuid.uuid4().hex, sha256=digest, size_bytes=len(data), width=width, height=height,
        accession_number=order.accession_number, patient_id=order.patient_id, notices=notices,
        notice_lang=facts.lang, notice_sha256=notice_sha256(notices, facts.lang), signer=facts.signer_label,
        uploaded_by=by.id, uploaded_at=now)
    session.add(row)
    session.commit()
    return SignatureStored(signature_ref=row.id, signature_sha256=digest, notice_sha256=row.notice_sha256,
                           size_bytes=len(data), width=width, height=height)


def verify(session: Session, ref: str, sha256: str | None, accession_number: str, signed: list[str],
           data_dir: Path) -> ConsentSignature:
    """The upload `ref` names, checked against the completion: same hash, same exam, notices covering
    everything marked signed, and stored bytes that still hash to it. Invalid says which one failed."""
    row = session.get(ConsentSignature, ref) if ref else None
    if row is None:
        raise Invalid(f"no uploaded signature {ref!r}: upload the signature image first")
    if sha256 != row.sha256:
        raise Invalid("signature_sha256 does not match the uploaded signature image")
    if row.accession_number != accession_number:
        raise Invalid(f"the signature was uploaded for exam {row.accession_number}, not {accession_number}")
    uncovered = [n for n in signed if n not in row.notices]
    if uncovered:
        raise Invalid(f"the patient signed below other notices; not shown: {', '.join(uncovered)}")
    path = path_of(data_dir, row.sha256)
    try:
        stored = path.read_bytes()
    except FileNotFoundError:
        raise Invalid(f"the stored signature image {row.sha256[:12]}… is missing") from None
    if hashlib.sha256(stored).hexdigest() != row.sha256:
        raise Invalid(f"the stored signature image {row.sha256[:12]}… no longer matches its hash")
    return row


def image_bytes(session: Session, ref: str, data_dir: Path) -> bytes:
    row = session.get(ConsentSignature, ref)
    if row is None:
        raise NotFound(f"no uploaded signature {ref}")
    data = path_of(data_dir, row.sha256).read_bytes()
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise Invalid("the stored signature image no longer matches its hash")
    return data
