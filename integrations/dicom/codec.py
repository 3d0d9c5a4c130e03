"""Byte-identical fast paths for the two encodings pynetdicom repeats for every image (R4.2.3, R4.3.2).

Per C-STORE, pynetdicom encodes each DIMSE command set twice (once to learn its
group length, once to send it) and, when spooling a received data set, builds and
writes a File Meta Information group, each time through pydicom's general
writer (character-set lookups, ambiguous-VR checks, validation). In the listener
that was ~25% of the CPU per received image and ~35% of a C-GET sub-operation.

`install()` puts two narrow encoders into pynetdicom.dimse_messages' namespace:
- command sets whose elements are all UL, US or UI single values (C-STORE,
  C-GET/C-MOVE responses, C-ECHO...) are packed directly in Implicit VR Little
  Endian; anything else (AE, LO, AT, multi-values) goes to pydicom as before;
- the spool file's File Meta group (always the same seven elements) is packed
  directly in Explicit VR Little Endian.
Both produce the same bytes as pydicom (tests/integrations/dicom/test_dicom_codec.py).
`encode_p_data_tf` packs a P-DATA primitive as pynetdicom's P_DATA_TF PDU would
(reactor.py sends a C-GET's ~33 data PDUs per image with it).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, dimse_messages

_original_encode = dimse_messages.encode
_original_create_file_meta = dimse_messages.create_file_meta
_original_write_file_meta_info = dimse_messages.write_file_meta_info
_installed = False


def encode_p_data_tf(primitive: Any) -> bytes:
    """A P-DATA-TF PDU (PS3.8 9.3.5): each PDV item is its length, context ID and data (header byte first)."""
    body = b"".join([struct.pack(">LB", len(data) + 1, context_id) + data
                     for context_id, data in primitive.presentation_data_value_list])
    return struct.pack(">BBL", 0x04, 0x00, len(body)) + body


def _element(tag: int, data: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(data)) + data


def encode_command_set(ds: Dataset) -> bytes | None:
    """Implicit VR Little Endian bytes of a simple command set, or None when pydicom must do it."""
    parts = []
    for tag in sorted(ds._dict):
        elem = ds._dict[tag]
        if type(elem) is not DataElement or tag >> 16 != 0:
            return None
        value, vr = elem.value, elem.VR
        if value is None or value == "":
            data = b""
        elif vr == "US" and type(value) is int:
            data = struct.pack("<H", value)
        elif vr == "UL" and type(value) is int:
            data = struct.pack("<L", value)
        elif vr == "UI" and isinstance(value, str):
            data = value.encode("ascii")
            if len(data) % 2:
                data += b"\x00"
        else:
            return None
        parts.append(_element(tag, data))
    return b"".join(parts)


def encode(ds: Dataset, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False) -> bytes | None:
    if is_implicit_vr and is_little_endian and not deflated:
        try:
            fast = encode_command_set(ds)
        except (UnicodeEncodeError, struct.error):
            fast = None
        if fast is not None:
            return fast
    return _original_encode(ds, is_implicit_vr, is_little_endian, deflated)


@dataclass(frozen=True)
class SpoolMeta:
    """What create_file_meta was asked for; written by write_file_meta_info below."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    implementation_uid: str = PYNETDICOM_IMPLEMENTATION_UID
    implementation_version: str = PYNETDICOM_IMPLEMENTATION_VERSION

    def encoded(self) -> bytes:
        def short(element: int, vr: bytes, text: str, pad: bytes) -> bytes:
            data = text.encode("ascii")
            if len(data) % 2:
                data += pad
            return struct.pack("<HH", 0x0002, element) + vr + struct.pack("<H", len(data)) + data

        body = b"".join([
            struct.pack("<HH", 0x0002, 0x0001) + b"OB\x00\x00" + struct.pack("<L", 2) + b"\x00\x01",
            short(0x0002, b"UI", self.sop_class_uid, b"\x00"),
            short(0x0003, b"UI", self.sop_instance_uid, b"\x00"),
            short(0x0010, b"UI", self.transfer_syntax, b"\x00"),
            short(0x0012, b"UI", self.implementation_uid, b"\x00"),
            short(0x0013, b"SH", self.implementation_version, b" "),
        ])
        return struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<HL", 4, len(body)) + body

    def as_dataset(self) -> Any:
        return _original_create_file_meta(
            sop_class_uid=self.sop_class_uid, sop_instance_uid=self.sop_instance_uid,
            transfer_syntax=self.transfer_syntax, implementation_uid=self.implementation_uid,
            implementation_version=self.implementation_version)


def create_file_meta(*, sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any,
                     implementation_uid: Any = PYNETDICOM_IMPLEMENTATION_UID,
                     implementation_version: Any = PYNETDICOM_IMPLEMENTATION_VERSION) -> SpoolMeta:
    return SpoolMeta(str(sop_class_uid or ""), str(sop_instance_uid or ""), str(transfer_syntax or ""),
                     str(implementation_uid), str(implementation_version))


def write_file_meta_info(fp: Any, file_meta: Any, enforce_standard: bool = True) -> None:
    if isinstance(file_meta, SpoolMeta) and not all(
            (file_meta.sop_class_uid, file_meta.sop_instance_uid, file_meta.transfer_syntax)):
        file_meta = file_meta.as_dataset()  # pydicom refuses it, as it always did
    if isinstance(file_meta, SpoolMeta):
        try:
            fp.write(file_meta.encoded())
            return
        except UnicodeEncodeError:  # not ASCII: let pydicom encode (and judge) it as it always did
            file_meta = file_meta.as_dataset()
    _original_write_file_meta_info(fp, file_meta, enforce_standard)


def install() -> None:
    """Use the fast paths in pynetdicom's DIMSE message coding (idempotent, process-wide)."""
    global _installed
    if _installed:
        return
    dimse_messages.encode = encode  # type: ignore[assignment]
    dimse_messages.create_file_meta = create_file_meta  # type: ignore[assignment]
    dimse_messages.write_file_meta_info = write_file_meta_info  # type: ignore[assignment]
    _installed = True
