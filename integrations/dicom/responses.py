"""Shaping C-FIND responses: requested keys only, in a character set that carries Chinese.

PS3.4 C.2.2.1: a response carries the keys the query asked for (with values when
known, zero length otherwise) and nothing else. For a sequence key with an
item, the item's keys are the requested sub-keys; an empty sequence key asks for
the whole sequence.

Matches are described as plain `Values` (tag -> (VR, value)). `encode_identifier`
writes the requested elements straight to bytes for the negotiated little-endian
transfer syntax: building pydicom datasets and writing them through pydicom's
general writer cost ~1.5 ms per worklist item, most of the MWL latency budget. The
bytes are the ones pydicom writes (tests/integrations/dicom/test_dicom_responses.py);
a value this writer does not know (another type, a character the charset cannot
carry) goes through pydicom as before. `project`/`answer` build the same response as
a pydicom Dataset (big-endian or deflated syntaxes, and callers that want a dataset).
"""
from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any, Union

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.valuerep import PersonName
from pynetdicom.dsutils import encode as pydicom_encode

# Character sets that can carry 张三; a query in one of them is answered in the same one.
CHINESE_CAPABLE = ("ISO_IR 192", "GB18030", "GBK")
DEFAULT_CHARSET = "ISO_IR 192"
_CHARSET_TAG = Tag(0x0008, 0x0005)

Values = dict[int, tuple[str, Any]]  # tag -> (VR, value); an SQ value is a list[Values]
# The keys a query asks for: (tag, the query's VR, the requested item keys of a sequence or None for all)
Shape = tuple[tuple[int, str, Union["Shape", None]], ...]

_PYTHON_CODEC = {"ISO_IR 192": "utf-8", "GB18030": "gb18030", "GBK": "gbk"}
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})  # pydicom's CUSTOMIZABLE_CHARSET_VR
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "IS", "UR"})
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_ITEM, _EMPTY = b"\xfe\xff\x00\xe0", b""


class _Unsupported(Exception):
    """A value the direct writer does not handle: pydicom writes this response."""


@lru_cache(maxsize=None)
def _tag_vr(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return tag, dictionary_VR(tag)


def put(values: Values, keyword: str, value: Any) -> None:
    """Record one attribute by keyword; None means 'known to be empty' (zero length)."""
    tag, vr = _tag_vr(keyword)
    if vr == "PN" and isinstance(value, str):
        value = PersonName(value)
    values[tag] = (vr, value)


def _element(tag: int, vr: str, value: Any, query_item: Dataset | None) -> DataElement:
    if vr == "SQ":
        items = [to_dataset(v) if query_item is None else project(v, query_item) for v in value or []]
        return DataElement(tag, "SQ", Sequence(items))
    return DataElement(tag, vr, value, already_converted=True)


def to_dataset(values: Values) -> Dataset:
    ds = Dataset()
    for tag in sorted(values):
        vr, value = values[tag]
        ds.add(_element(tag, vr, value, None))
    return ds


def project(values: Values, query: Dataset) -> Dataset:
    """The requested keys of `values` (recursively for sequences); unknown keys come back empty."""
    out = Dataset()
    for elem in query:
        tag = elem.tag
        if tag == _CHARSET_TAG or tag.is_private or tag.group in (0x0000, 0x0002):
            continue
        known = values.get(tag)
        if known is None:
            out.add(DataElement(tag, elem.VR, [] if elem.VR == "SQ" else None))
            continue
        vr, value = known
        sub = elem.value[0] if vr == "SQ" and elem.VR == "SQ" and elem.value else None
        out.add(_element(tag, vr, value, sub))
    return out


def answer(values: Values, query: Dataset, charset: str, always: tuple[str, ...] = ()) -> Dataset:
    """One C-FIND response identifier: the requested keys, the `always` keys, the character set."""
    ds = project(values, query)
    for keyword in always:
        tag = _tag_vr(keyword)[0]
        if tag in values:
            vr, value = values[tag]
            ds.add(DataElement(tag, vr, value, already_converted=True))
    return with_charset(ds, charset)


def response_charset(query: Dataset) -> str:
    """The query's own character set when it can carry Chinese, else UTF-8 (ISO_IR 192)."""
    raw = query.get("SpecificCharacterSet", "") or ""
    values = [raw] if isinstance(raw, str) else list(raw)
    for v in values:
        if v and v.strip().upper() in CHINESE_CAPABLE:
            return v.strip().upper()
    return DEFAULT_CHARSET


def with_charset(ds: Dataset, charset: str) -> Dataset:
    ds.SpecificCharacterSet = charset
    return ds


def query_shape(query: Dataset) -> Shape:
    """The requested keys of a C-FIND identifier, as `project` reads them (hashable: a cache key)."""
    out = []
    for elem in query:
        tag = elem.tag
        if tag == _CHARSET_TAG or tag.is_private or tag.group in (0x0000, 0x0002):
            continue
        sub = query_shape(elem.value[0]) if elem.VR == "SQ" and elem.value else None
        out.append((int(tag), str(elem.VR), sub))
    return tuple(out)


def _text(value: Any, vr: str, codec: str) -> bytes:
    if isinstance(value, (list, tuple)):
        return b"\\".join(_text(v, vr, codec) for v in value)
    if isinstance(value, (str, PersonName)):
        text = str(value)
    elif type(value) is int and vr == "IS":
        text = str(value)
    else:
        raise _Unsupported(f"{vr} value of type {type(value).__name__}")
    try:
        if vr in _CHARSET_VRS:
            return text.encode(codec)
        if vr in _ASCII_VRS:
            return text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise _Unsupported(str(exc)) from exc
    raise _Unsupported(f"VR {vr}")


def _header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    if implicit:
        return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, length)
    if vr in _LONG_VRS:
        return struct.pack("<HH2sxxL", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
    if length > 0xFFFF or len(vr) != 2:
        raise _Unsupported(f"{vr} of {length} bytes")
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)


def _value(vr: str, value: Any, sub: Shape | None, codec: str, implicit: bool) -> bytes:
    if vr == "SQ":
        items = []
        for item in value or []:
            body = _dataset(item, _full_shape(item) if sub is None else sub, codec, implicit)
            items.append(_ITEM + struct.pack("<L", len(body)) + body)
        return b"".join(items)
    if value is None or value == "" or value == []:
        return _EMPTY
    data = _text(value, vr, codec)
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def _full_shape(values: Values) -> Shape:
    return tuple((tag, values[tag][0], None) for tag in sorted(values))


def _dataset(values: Values, shape: Shape, codec: str, implicit: bool) -> bytes:
    parts = []
    for tag, query_vr, sub in shape:
        known = values.get(tag)
        if known is None:  # asked for, not known: zero length (an empty sequence for SQ)
            parts.append(_header(tag, query_vr, 0, implicit))
            continue
        vr, value = known
        data = _value(vr, value, sub if vr == "SQ" and query_vr == "SQ" else None, codec, implicit)
        parts.append(_header(tag, vr, len(data), implicit) + data)
    return b"".join(parts)


def encode_identifier(values: Values, shape: Shape, charset: str, implicit: bool,
                      always: tuple[str, ...] = ()) -> bytes:
    """The bytes of `answer(values, query, charset, always)` in (implicit or explicit VR) little endian."""
    direct = direct_identifier(values, shape, charset, implicit, always)
    return direct if direct is not None else _pydicom_bytes(values, shape, charset, implicit, always)


def direct_identifier(values: Values, shape: Shape, charset: str, implicit: bool,
                      always: tuple[str, ...] = ()) -> bytes | None:
    """`encode_identifier` without pydicom, or None when a value needs pydicom's writer."""
    keys = {tag: (tag, vr, sub) for tag, vr, sub in shape}
    for keyword in always:
        tag = _tag_vr(keyword)[0]
        if tag in values:
            keys[tag] = (tag, values[tag][0], None)
    keys[int(_CHARSET_TAG)] = (int(_CHARSET_TAG), "CS", None)
    merged = {**values, int(_CHARSET_TAG): ("CS", charset)}
    try:
        return _dataset(merged, tuple(keys[t] for t in sorted(keys)), _PYTHON_CODEC[charset], implicit)
    except (_Unsupported, KeyError):
        return None


def _shape_query(shape: Shape) -> Dataset:
    ds = Dataset()
    for tag, vr, sub in shape:
        if vr == "SQ":
            ds.add(DataElement(tag, "SQ", Sequence([] if sub is None else [_shape_query(sub)])))
        else:
            ds.add(DataElement(tag, vr, None))
    return ds


def _pydicom_bytes(values: Values, shape: Shape, charset: str, implicit: bool, always: tuple[str, ...]) -> bytes:
    encoded = pydicom_encode(answer(values, _shape_query(shape), charset, always), implicit, True)
    if encoded is None:
        raise ValueError("response identifier could not be encoded")
    return encoded
