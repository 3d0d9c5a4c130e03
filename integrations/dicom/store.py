"""UID-addressed file store for received DICOM objects (R4.2.3, R4.3.2).

Files are written exactly as received (`event.encoded_dataset()`: preamble, file
meta and the dataset bytes in the transfer syntax the modality chose), never
decoded and re-encoded, so what a viewer retrieves is bit-for-bit what the
modality sent. Layout: `<root>/<study UID>/<series UID>/<SOP instance UID>.dcm`.

A write goes to a temporary file that is then hard-linked into place: the link
fails if the instance already exists, which makes a second copy of the same SOP
Instance UID a no-op (idempotent) without a check-then-write race.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class InvalidUID(ValueError):
    """A UID that is not digits and dots (max 64): it must never become a path."""


def check_uid(uid: str) -> str:
    if not uid or len(uid) > 64 or not UID_RE.match(uid):
        raise InvalidUID(f"not a valid DICOM UID: {uid[:80]!r}")
    return uid


class DicomStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.quarantine_root = root / "_quarantine"
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def rel_path(study_uid: str, series_uid: str, sop_uid: str) -> str:
        """Raises InvalidUID for anything that is not a UID."""
        return f"{check_uid(study_uid)}/{check_uid(series_uid)}/{check_uid(sop_uid)}.dcm"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def write(self, rel: str, data: bytes | memoryview) -> bool:
        """Store `data` at `rel`; False if that instance was already stored (nothing changes)."""
        final = self.root / rel
        if final.exists():
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def adopt(self, src: Path, rel: str) -> bool:
        """Move a received file (already in DICOM File Format) to `rel`; False if it was already stored.

        A hard link then unlink is atomic and never overwrites: the first copy wins.
        Across file systems it falls back to copying.
        """
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, final)
        except FileExistsError:
            src.unlink(missing_ok=True)
            return False
        except OSError:  # another file system: copy next to the target, then link
            tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
            shutil.copyfile(src, tmp)
            src.unlink(missing_ok=True)
            try:
                os.link(tmp, final)
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            return True
        src.unlink(missing_ok=True)
        return True

    @property
    def incoming(self) -> Path:
        """Where pynetdicom spools C-STORE data sets (same file system, so adopt() is a rename)."""
        path = self.root / "_incoming"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def quarantine(self, src: Path, qid: str) -> str:
        """Keep refused bytes for a person to look at; returns the path relative to the root."""
        self.quarantine_root.mkdir(parents=True, exist_ok=True)
        rel = f"_quarantine/{qid}.dcm"
        shutil.move(src, self.root / rel)
        return rel
