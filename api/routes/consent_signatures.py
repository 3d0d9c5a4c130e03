"""Handwritten consent signatures for check-in (R6.1.4): upload first, then complete check-in with the reference.

Two ways in: a JSON body carrying the pad's PNG as a data URL, or a multipart upload of a
PNG file. Either way the image is checked (size limit, PNG signature, decodes completely,
not blank), stored content-addressed under the data directory, and answered with the
reference + SHA-256 the check-in form carries (`signature_ref`, `signature_sha256`) and the
hash of the notice texts shown above the pad. The image never enters Temporal history.
Uploads are audited as patient record changes (security.permissions.AUDITED).
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from api.deps import SessionDep, check_patient_access, get_clock, require
from api.errors import ErrorBody, FieldError, InvalidBody
from core.config import get_settings
from core.db import session_scope
from domain.booking.check_in import CheckInNeed
from domain.consent_tables import ConsentSignature
from domain.enums import TaskType
from domain.tables import ExamOrder, HumanTask, User
from security.permissions import Permission
from services import consent_signatures as svc
from services.consent_signatures import SignatureFacts, SignatureIn, SignatureStored
from services.errors import LoopError, NotFound

router = APIRouter(prefix="/api/v1/consent-signatures", tags=["consent"])

Recorder = Annotated[User, Depends(require(Permission.consent_record))]
Reader = Annotated[User, Depends(require(Permission.consent_read))]
_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody}, 404: {"model": ErrorBody}, 413: {"model": ErrorBody},
    422: {"model": InvalidBody, "description": "Not a PNG, unreadable, blank, or facts invalid (the reason says which)"},
}


def _store(session: SessionDep, data: bytes, facts: SignatureFacts, user: User, request: Request) -> SignatureStored:
    order = session.get(ExamOrder, facts.accession_number)
    if order is None:
        raise NotFound(f"no order {facts.accession_number}")
    check_patient_access(order.patient_id, request, user)
    s = get_settings()
    return svc.store(session, data, facts, user, get_clock(request).now(), s.data_dir,
                     s.consent_signature_max_bytes, s.consent_signature_max_pixels)


@router.post("", response_model=SignatureStored, status_code=status.HTTP_201_CREATED, responses=_REFUSALS)
def upload_data_url(body: SignatureIn, user: Recorder, session: SessionDep, request: Request) -> SignatureStored:
    """The signature pad's PNG as a `data:image/png;base64,` URL, with the exam and the notices shown."""
    limit = get_settings().consent_signature_max_bytes
    if len(body.image) > (limit * 4) // 3 + 64:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"signature image is larger than {limit // 1024} KB")
    data = svc.decode_data_url(body.image, limit)
    return _store(session, data, SignatureFacts(**body.model_dump(exclude={"image"})), user, request)


@router.post("/upload", response_model=SignatureStored, status_code=status.HTTP_201_CREATED, responses=_REFUSALS)
def upload_file(
    user: Recorder, session: SessionDep, request: Request,
    image: Annotated[UploadFile, File(description="PNG file")],
    accession_number: Annotated[str, Form()],
    notices: Annotated[list[CheckInNeed], Form()],
    lang: Annotated[str, Form()] = "zh-CN",
    signer: Annotated[str, Form()] = "patient",
    signer_name: Annotated[str, Form()] = "",
) -> SignatureStored:
    """The same as a multipart upload of a PNG file (a tablet app, a scanner)."""
    limit = get_settings().consent_signature_max_bytes
    data = image.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"signature image is larger than {limit // 1024} KB")
    try:
        facts = SignatureFacts(accession_number=accession_number, notices=notices, lang=lang, signer=signer,
                               signer_name=signer_name)
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False)) from None
    return _store(session, data, facts, user, request)


@router.get("/{signature_ref}/image", response_class=Response, responses={200: {"content": {"image/png": {}}}, **_REFUSALS})
def image(signature_ref: str, user: Reader, session: SessionDep, request: Request) -> Response:
    """The stored PNG, re-hashed on the way out (a changed file answers 422, never the wrong image)."""
    row = session.get(ConsentSignature, signature_ref)
    if row is None:
        raise NotFound(f"no uploaded signature {signature_ref}")
    check_patient_access(row.patient_id, request, user)
    return Response(svc.image_bytes(session, signature_ref, get_settings().data_dir), media_type="image/png",
                    headers={"Cache-Control": "no-store"})


def check_in_errors(task: HumanTask, data: dict[str, Any], prefix: str = "data") -> list[FieldError]:
    """A check-in completion naming an uploaded signature: the reference, hash, exam and notices must
    agree with what was stored, checked here so the person gets the reason before the loop is asked."""
    if task.task_type != TaskType.check_in.value or not data.get("signature_ref"):
        return []
    with session_scope() as s:
        try:
            svc.verify(s, data["signature_ref"], data.get("signature_sha256"), task.accession_number,
                       list(data.get("signed", [])), get_settings().data_dir)
        except LoopError as err:
            return [FieldError(field=f"{prefix}.signature_ref", msg=err.reason, type="signature")]
    return []
