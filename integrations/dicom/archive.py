"""Lossless archive copies (issue 3, compression): JPEG-LS or JPEG 2000 lossless, verified bit-exact.

settings.dicom_archive_compression chooses none | jpeg-ls | j2k. The received file
stays untouched in the store (what the modality sent is what viewers get); the
archive copy under <data_dir>/dicom_archive/ keeps the same UID-addressed layout.
Every copy is decoded again and compared with the original pixels before it is
kept: a copy that does not round-trip bit for bit raises `NotLossless` and is not
written. Objects that are already compressed, or have no pixel data, are copied
as they are (re-encoding a lossy image would not make it lossless).
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, UID
from sqlmodel import select

from core.config import Settings
from core.db import session_scope
from domain.imaging_tables import ImagingInstance, ImagingStudy

log = logging.getLogger("radloop.dicom.archive")
SYNTAXES: dict[str, UID] = {"jpeg-ls": JPEGLSLossless, "j2k": JPEG2000Lossless}


class NotLossless(RuntimeError):
    """The compressed copy did not decode to the original pixels."""


def archive_root(settings: Settings) -> Path:
    return settings.data_dir / "dicom_archive"


def _atomic_write(dst: Path, write: Callable[[Path], None]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def archive_copy(src: Path, dst: Path, syntax: UID) -> Path:
    """Write `src` to `dst` compressed losslessly with `syntax`, verified bit-exact."""
    ds = dcmread(src)
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
        _atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
        return dst
    original = ds.pixel_array.copy()
    ds.compress(syntax, generate_instance_uid=False)  # the archive copy is the same instance
    _atomic_write(dst, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
    again = dcmread(dst).pixel_array
    if again.shape != original.shape or not np.array_equal(again, original):
        dst.unlink(missing_ok=True)
        raise NotLossless(f"{syntax.name} copy of {src.name} does not round-trip")
    return dst


def archive_received(settings: Settings, store_root: Path) -> int:
    """Archive every instance of studies marked received that has no archive copy yet."""
    syntax = SYNTAXES.get(settings.dicom_archive_compression)
    if syntax is None:
        return 0
    root = archive_root(settings)
    with session_scope() as s:
        rows = s.exec(select(ImagingInstance.rel_path).join(
            ImagingStudy, ImagingStudy.study_instance_uid == ImagingInstance.study_instance_uid).where(
            ImagingStudy.images_received_at.is_not(None))).all()  # type: ignore[union-attr]
    done = 0
    for rel in rows:
        dst = root / rel
        if dst.exists():
            continue
        try:
            archive_copy(store_root / rel, dst, syntax)
            done += 1
        except Exception:
            log.exception("archive copy of %s failed", rel)
    return done
