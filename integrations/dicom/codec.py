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
A C-FIND handler may yield an `EncodedDataset`: a response identifier already
encoded for the context's transfer syntax (responses.encode_identifier), which
pynetdicom's service classes then send as it is instead of writing it again.
C-FIND responses (one per match: 50 for a day's worklist) skip pynetdicom's
DIMSEMessage, which builds a pydicom command set per message (~0.2 ms each): their
command sets differ only in status and message ID, so each distinct one is built
by pynetdicom once and its bytes reused (`find_response_p_data`, same P-DATA), and
the pending ones leave in one batch with the final response (`send_msg`).
"""
from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from io import BytesIO
from math import ceil
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, dimse_messages, evt, service_class
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.pdu_primitives import P_DATA

_original_encode = dimse_messages.encode
_original_create_file_meta = dimse_messages.create_file_meta
_original_write_file_meta_info = dimse_messages.write_file_meta_info
_original_dataset_encode = service_class.encode
_original_send_msg = DIMSEServiceProvider.send_msg
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


class EncodedDataset(Dataset):
    """A data set already encoded in little endian (implicit or explicit VR), sent as these bytes."""

    def __init__(self, encoded: bytes, is_implicit_vr: bool) -> None:
        super().__init__()
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "encoded_implicit_vr", is_implicit_vr)


def encode_dataset(ds: Dataset, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False) -> bytes | None:
    """pynetdicom's dsutils.encode for the service classes' response data sets, passing pre-encoded ones through."""
    if type(ds) is EncodedDataset:
        if is_little_endian and not deflated and ds.encoded_implicit_vr == is_implicit_vr:
            return ds.encoded  # type: ignore[no-any-return]
        return None  # encoded for another transfer syntax: pynetdicom answers "unable to encode" (0xC312)
    return _original_dataset_encode(ds, is_implicit_vr, is_little_endian, deflated)


def installed() -> bool:
    return _installed


_FindKey = tuple[str, int, int, bool]
_find_commands: dict[_FindKey, bytes] = {}
_find_commands_lock = threading.Lock()
FIND_COMMANDS_KEPT = 256  # (SOP class, message ID, status, identifier?) combinations
PENDING = (0xFF00, 0xFF01)


def _find_command(primitive: C_FIND) -> bytes:
    """The encoded command set of a C-FIND response, built by pynetdicom once per distinct one."""
    key = (str(primitive.AffectedSOPClassUID), int(primitive.MessageIDBeingRespondedTo),  # type: ignore[arg-type]
           int(primitive.Status), primitive.Identifier is not None)  # type: ignore[arg-type]
    command = _find_commands.get(key)
    if command is None:
        message = dimse_messages.C_FIND_RSP()
        message.primitive_to_message(primitive)
        command = dimse_messages.encode(message.command_set, True, True)
        if command is None:
            raise ValueError("C-FIND response command set could not be encoded")
        with _find_commands_lock:
            if len(_find_commands) >= FIND_COMMANDS_KEPT:
                _find_commands.clear()
            _find_commands[key] = command
    return command


def _fragments(context_id: int, data: bytes, max_pdu: int, more: bytes, last: bytes) -> list[P_DATA]:
    size = len(data) if max_pdu == 0 else max_pdu - 6
    count = 1 if max_pdu == 0 else ceil(len(data) / size)
    out = []
    for n in range(count):
        pdata = P_DATA()
        pdata.presentation_data_value_list.append(
            (context_id, (last if n == count - 1 else more) + data[n * size:(n + 1) * size]))
        out.append(pdata)
    return out


def find_response_p_data(primitive: C_FIND, context_id: int, max_pdu: int) -> list[P_DATA]:
    """The P-DATA primitives pynetdicom's C_FIND_RSP.encode_msg makes for this response (PS3.7 E.2 flags)."""
    out = _fragments(context_id, _find_command(primitive), max_pdu, b"\x01", b"\x03")
    identifier = primitive.Identifier.getvalue() if primitive.Identifier is not None else b""
    if identifier:
        out += _fragments(context_id, identifier, max_pdu, b"\x00", b"\x02")
    return out


def send_msg(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> None:
    """DIMSEServiceProvider.send_msg; plain C-FIND responses take the cached command set."""
    if (type(primitive) is C_FIND and primitive.MessageIDBeingRespondedTo is not None
            and primitive.OffendingElement is None and primitive.ErrorComment is None
            and isinstance(primitive.Identifier, (BytesIO, type(None)))
            and not 0 < self.maximum_pdu_size < 7
            and not self.assoc.get_handlers(evt.EVT_DIMSE_SENT)):  # nobody to hand the DIMSEMessage to
        # Pending responses only join the queue (DUL.send_pdu does no more for P-DATA); the final one
        # wakes the Upper Layer thread, which sends them all in one write (reactor.py): one thread
        # hand-off per query instead of one per match, each a GIL switch and, on a busy machine, a wait
        # for a core. An idle tick (reactor.TICK_SECONDS) would send them anyway.
        deliver = self.dul.to_provider_queue.put if primitive.Status in PENDING else self.dul.send_pdu
        for pdata in find_response_p_data(primitive, context_id, self.maximum_pdu_size):
            deliver(pdata)
        return
    _original_send_msg(self, primitive, context_id)


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
    """Use the fast paths in pynetdicom's DIMSE message and response coding (idempotent, process-wide)."""
    global _installed
    if _installed:
        return
    dimse_messages.encode = encode  # type: ignore[assignment]
    dimse_messages.create_file_meta = create_file_meta  # type: ignore[assignment]
    dimse_messages.write_file_meta_info = write_file_meta_info  # type: ignore[assignment]
    service_class.encode = encode_dataset  # type: ignore[assignment]
    DIMSEServiceProvider.send_msg = send_msg  # type: ignore[method-assign]
    _installed = True
