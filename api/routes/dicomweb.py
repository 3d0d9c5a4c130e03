"""DICOMweb (PS3.18) over the same store and index as the DICOM listener (R4.3.2).

- QIDO-RS  GET  /dicomweb/studies[/{study}/series[/{series}/instances]]  (application/dicom+json)
- WADO-RS  GET  /dicomweb/studies/{study}[/series/{series}[/instances/{sop}]]  multipart/related
           of the stored Part 10 files, byte for byte; .../metadata as DICOM JSON (no pixel data)
           .../instances/{sop}/frames/{n[,m...]} the frames as stored (native bytes, or the
           compressed bitstream with its transfer-syntax), for OHIF's default wadors rendering
- WADO-URI GET  /dicomweb/wado?requestType=WADO&studyUID=&seriesUID=&objectUID=  (application/dicom)
- STOW-RS  POST /dicomweb/studies  multipart/related; type="application/dicom"
           -> 200 all stored, 202 some failed, 409 none stored (FailedSOPSequence with reasons)
- POST /dicomweb/orders/{accession}/attachments  a JPEG, PNG or PDF body becomes a Secondary
           Capture / Encapsulated PDF in the order's study (201; 415 for other types)
Every call needs a bearer token; STOW-RS is for technologists and system administrators,
attachments also for registrars (who scan paper requests). A clinician reads only the
studies of their own patients' orders (need to know, security.need_to_know): QIDO
leaves the others out, WADO answers 403 unless the glass is broken for that exam.
OHIF reads this with `qidoRoot`/`wadoRoot` = <api>/dicomweb and `wadoUriRoot` = <api>/dicomweb/wado.
"""
from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlmodel import select

from api.deps import check_study_access, get_clock, require, study_scope
from core.config import get_settings
from core.db import session_scope
from domain.imaging_tables import ImagingInstance
from domain.tables import ExamOrder, Patient, User
from integrations.dicom import index, qr_query
from integrations.dicom.convert import Unsupported, convert
from integrations.dicom.render import RENDERED_TYPES, RenderError, render
from integrations.dicom.handlers.qr_find import instance_values, series_values, study_values
from integrations.dicom.ingest import ingest_spooled
from integrations.dicom.multipart import boundary_of, new_boundary, split_parts, stream_files
from integrations.dicom.responses import put, to_dataset
from integrations.dicom.store import DicomStore
from security import need_to_know
from security.permissions import Permission
from security.watermark import watermark_image, watermark_label

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
MAX_STOW_BYTES = 1 << 30  # one request; larger studies are sent in several
PAGING = {"limit", "offset", "fuzzymatching", "includefield"}
ImageReader = Annotated[User, Depends(require(Permission.image_read))]
Uploader = Annotated[User, Depends(require(Permission.image_store))]
Attacher = Annotated[User, Depends(require(Permission.attachment_add))]
MAX_ATTACHMENT_BYTES = 64 << 20
InScope = [Depends(study_scope)]  # routes naming a {study}: its order's need to know


def _store() -> DicomStore:
    return DicomStore(get_settings().data_dir / "dicom")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status_code=status, media_type=DICOM_JSON)


def _query(level: str, params: dict[str, str], **fixed: str) -> Dataset:
    q = Dataset()
    q.QueryRetrieveLevel = level
    for key, value in {**params, **fixed}.items():
        if key in PAGING:
            continue
        keyword = key
        if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
            from pydicom.datadict import keyword_for_tag

            keyword = keyword_for_tag(int(key, 16)) or key
        try:
            setattr(q, keyword, value)
        except (AttributeError, ValueError, TypeError):
            raise HTTPException(400, f"unknown or invalid query key {key}") from None
    return q


def _qido(level: str, request: Request, user: User, **fixed: str) -> Response:
    params = dict(request.query_params)
    limit = int(params.get("limit", "1000"))
    offset = int(params.get("offset", "0"))
    with session_scope() as s:
        _, rows = qr_query.search(s, _query(level, params, **fixed))
        if user.role in need_to_know.SCOPED_ROLES:
            rows = _within_need_to_know(s, user, rows, request)
    rows = rows[offset:offset + limit]
    build = {"STUDY": lambda r: study_values(r[0]), "SERIES": lambda r: series_values(*r),
             "IMAGE": lambda r: instance_values(*r)}[level]
    out = []
    for row in rows:
        values = build(row)
        put(values, "RetrieveAETitle", get_settings().ae_title)
        out.append(to_dataset(values).to_json_dict())
    return _json(out)


def _within_need_to_know(s: Any, user: User, rows: list[tuple[Any, ...]], request: Request) -> list[tuple[Any, ...]]:
    """Only the studies of the clinician's patients (and those opened by break-glass, flagged)."""
    now = get_clock(request).now()
    bases: dict[str, str | None] = {}
    kept: list[tuple[Any, ...]] = []
    for row in rows:
        uid = row[0].study_instance_uid
        if uid not in bases:
            bases[uid] = need_to_know.study_access_basis(s, user, uid, now)
        if bases[uid] is not None:
            kept.append(row)
    if any(bases.get(r[0].study_instance_uid) == "break_glass" for r in kept):
        request.state.access_basis = "break_glass"
    return kept


# QIDO-RS answers are DICOM JSON (PS3.18 F.2): an array of datasets keyed by tag.
QIDO_RESPONSES: dict[int | str, dict] = {200: {"description": "Matching objects as DICOM JSON", "content": {
    DICOM_JSON: {"schema": {"type": "array", "items": {"type": "object"}}}}}}


@router.get("/studies", responses=QIDO_RESPONSES)
def qido_studies(request: Request, user: ImageReader) -> Response:
    return _qido("STUDY", request, user)


@router.get("/studies/{study}/series", responses=QIDO_RESPONSES, dependencies=InScope)
def qido_series(study: str, request: Request, user: ImageReader) -> Response:
    return _qido("SERIES", request, user, StudyInstanceUID=study)


@router.get("/studies/{study}/series/{series}/instances", responses=QIDO_RESPONSES, dependencies=InScope)
def qido_instances(study: str, series: str, request: Request, user: ImageReader) -> Response:
    return _qido("IMAGE", request, user, StudyInstanceUID=study, SeriesInstanceUID=series)


def _instances(study: str, series: str | None = None, sop: str | None = None) -> list[ImagingInstance]:
    with session_scope() as s:
        stmt = select(ImagingInstance).where(ImagingInstance.study_instance_uid == study)
        if series:
            stmt = stmt.where(ImagingInstance.series_instance_uid == series)
        if sop:
            stmt = stmt.where(ImagingInstance.sop_instance_uid == sop)
        rows = list(s.exec(stmt.order_by(ImagingInstance.series_instance_uid, ImagingInstance.instance_number)))
    if not rows:
        raise HTTPException(404, "no such study, series or instance")
    return rows


def _multipart(rows: list[ImagingInstance]) -> StreamingResponse:
    store, boundary = _store(), new_boundary()
    paths = [store.path(r.rel_path) for r in rows]
    return StreamingResponse(
        stream_files(paths, boundary),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


def _metadata(rows: list[ImagingInstance]) -> Response:
    store = _store()
    out = []
    for r in rows:
        ds = dcmread(store.path(r.rel_path), stop_before_pixels=True)
        out.append(ds.to_json_dict(bulk_data_threshold=1 << 16, bulk_data_element_handler=lambda _e: ""))
    return _json(out)


@router.get("/studies/{study}", dependencies=InScope)
def wado_study(study: str, _: ImageReader) -> StreamingResponse:
    return _multipart(_instances(study))


@router.get("/studies/{study}/series/{series}", dependencies=InScope)
def wado_series(study: str, series: str, _: ImageReader) -> StreamingResponse:
    return _multipart(_instances(study, series))


@router.get("/studies/{study}/series/{series}/instances/{sop}", dependencies=InScope)
def wado_instance(study: str, series: str, sop: str, _: ImageReader) -> StreamingResponse:
    return _multipart(_instances(study, series, sop))


@router.get("/studies/{study}/metadata", dependencies=InScope)
def study_metadata(study: str, _: ImageReader) -> Response:
    return _metadata(_instances(study))


@router.get("/studies/{study}/series/{series}/metadata", dependencies=InScope)
def series_metadata(study: str, series: str, _: ImageReader) -> Response:
    return _metadata(_instances(study, series))


@router.get("/wado")
def wado_uri(
    request: Request,
    user: ImageReader,
    request_type: Annotated[str, Query(alias="requestType")],
    study: Annotated[str, Query(alias="studyUID")],
    series: Annotated[str, Query(alias="seriesUID")],
    sop: Annotated[str, Query(alias="objectUID")],
) -> Response:
    if request_type != "WADO":
        raise HTTPException(400, "requestType must be WADO")
    check_study_access(study, request, user)
    [row] = _instances(study, series, sop)
    return Response(_store().path(row.rel_path).read_bytes(), media_type="application/dicom")


@router.post("/studies")
async def stow(request: Request, user: Uploader) -> Response:
    try:
        boundary = boundary_of(request.headers.get("content-type", ""))
    except ValueError as exc:
        raise HTTPException(415, str(exc)) from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_STOW_BYTES:
            raise HTTPException(413, f"more than {MAX_STOW_BYTES} bytes in one STOW-RS request")
    store = _store()
    stored, failed = [], []
    for headers, payload in split_parts(bytes(body), boundary):
        spool = store.incoming / f"stow-{uuid.uuid4().hex}.dcm"
        spool.write_bytes(payload)
        result = ingest_spooled(store, spool, f"stow:{user.username}")
        item = Dataset()
        if result.status == 0 and result.facts is not None and result.rel_path is not None:
            index.index_instance(result.facts, result.rel_path, result.size, f"stow:{user.username}")
            item.ReferencedSOPClassUID = result.facts.sop_class_uid
            item.ReferencedSOPInstanceUID = result.facts.sop_instance_uid
            stored.append(item)
        else:
            item.FailureReason = result.status
            failed.append(item)
    response = Dataset()
    if stored:
        response.ReferencedSOPSequence = stored
    if failed:
        response.FailedSOPSequence = failed
    status = 200 if not failed else (202 if stored else 409)
    return _json(response.to_json_dict(), status)


@router.post("/orders/{accession}/attachments", status_code=201)
async def attach(accession: str, request: Request, user: Attacher) -> Response:
    data = await request.body()
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise HTTPException(413, f"attachments are limited to {MAX_ATTACHMENT_BYTES} bytes")
    with session_scope() as s:
        order = s.get(ExamOrder, accession)
        patient = s.get(Patient, order.patient_id) if order else None
    if order is None or patient is None:
        raise HTTPException(404, f"no order {accession}")
    store = _store()
    spool = store.incoming / f"convert-{uuid.uuid4().hex}.dcm"
    try:
        convert(data, request.headers.get("content-type", ""), order, patient, spool)
    except Unsupported as exc:
        spool.unlink(missing_ok=True)
        raise HTTPException(415, str(exc)) from None
    source = f"convert:{user.username}"
    result = ingest_spooled(store, spool, source)
    if result.status != 0 or result.facts is None or result.rel_path is None:
        raise HTTPException(422, f"converted object refused: {result.reason}")
    index.index_instance(result.facts, result.rel_path, result.size, source)
    f = result.facts
    return _json({"sop_instance_uid": f.sop_instance_uid, "sop_class_uid": f.sop_class_uid,
                  "study_instance_uid": f.study_instance_uid, "series_instance_uid": f.series_instance_uid}, 201)


# PS3.18 8.7.3.5: media type per transfer syntax for frames sent as stored (transfer-syntax=*).
FRAME_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


def frame_bytes(path: Any, numbers: list[int]) -> tuple[list[bytes], str]:
    """The requested frames without decoding: native slices or encapsulated fragments as stored."""
    from pydicom.encaps import generate_frames

    ds = dcmread(path)
    ts = str(ds.file_meta.TransferSyntaxUID)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if any(n < 1 or n > n_frames for n in numbers):
        raise HTTPException(404, f"frames are numbered 1..{n_frames}")
    data = ds.PixelData
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        frames = list(generate_frames(data, number_of_frames=n_frames))
    else:
        size = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(ds.BitsAllocated) // 8
        frames = [data[i * size:(i + 1) * size] for i in range(n_frames)]
    return [frames[n - 1] for n in numbers], ts


def _rendered_type(accept: str | None) -> str:
    """image/jpeg unless the client asks for PNG (PS3.18 8.3.5: rendered media types)."""
    wanted = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    return next((t for t in wanted if t in RENDERED_TYPES), "image/jpeg")


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered", dependencies=InScope,
            responses={200: {"description": "One frame as a watermarked picture",
                             "content": {"image/jpeg": {}, "image/png": {}}}})
def wado_rendered(
    study: str, series: str, sop: str, request: Request, user: ImageReader,
    frame: Annotated[int, Query(ge=1, description="1-based frame number of a multi-frame image")] = 1,
    accept: Annotated[str | None, Query(description="image/jpeg (default) or image/png")] = None,
) -> Response:
    """The image as a person sees it, watermarked with the viewer's ID and the time of viewing (R10.3.4 (5))."""
    [row] = _instances(study, series, sop)
    media_type = _rendered_type(accept or request.headers.get("accept"))
    try:
        picture = render(_store().path(row.rel_path), media_type, frame)
    except RenderError as err:
        raise HTTPException(404 if "frames are numbered" in str(err) else 422, str(err)) from None
    label = watermark_label(user.id, get_clock(request).now(), get_settings().timezone)
    request.state.audit_detail = {"rendered": media_type, "frame": frame, "watermark": label}
    return Response(watermark_image(picture, media_type, label), media_type=media_type,
                    headers={"Cache-Control": "no-store"})


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}", dependencies=InScope)
def wado_frames(study: str, series: str, sop: str, frames: str, _: ImageReader) -> Response:
    try:
        numbers = [int(f) for f in frames.split(",")]
    except ValueError:
        raise HTTPException(400, "frame numbers are integers") from None
    [row] = _instances(study, series, sop)
    parts, ts = frame_bytes(_store().path(row.rel_path), numbers)
    part_type = FRAME_TYPES.get(ts, "application/octet-stream")
    boundary = new_boundary()
    head = f"--{boundary}\r\nContent-Type: {part_type}; transfer-syntax={ts}\r\n\r\n".encode()
    body = b"".join(head + p + b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
    return Response(body, media_type=f'multipart/related; type="{part_type}"; boundary={boundary}')
