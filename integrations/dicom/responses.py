"""Shaping C-FIND responses: requested keys only, in a character set that carries Chinese.

PS3.4 C.2.2.1: a response carries the keys the query asked for (with values when
known, zero length otherwise) and nothing else. For a sequence key with an
item, the item's keys are the requested sub-keys; an empty sequence key asks for
the whole sequence.
"""
from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

# Character sets that can carry 张三; a query in one of them is answered in the same one.
CHINESE_CAPABLE = ("ISO_IR 192", "GB18030", "GBK")
DEFAULT_CHARSET = "ISO_IR 192"
_CHARSET_TAG = Tag(0x0008, 0x0005)


def response_charset(query: Dataset) -> str:
    """The query's own character set when it can carry Chinese, else UTF-8 (ISO_IR 192)."""
    raw = query.get("SpecificCharacterSet", "") or ""
    values = [raw] if isinstance(raw, str) else list(raw)
    for v in values:
        if v and v.strip().upper() in CHINESE_CAPABLE:
            return v.strip().upper()
    return DEFAULT_CHARSET


def project(full: Dataset, query: Dataset) -> Dataset:
    """`full` reduced to the keys in `query` (recursively for sequences)."""
    out = Dataset()
    for elem in query:
        tag = elem.tag
        if tag == _CHARSET_TAG or tag.is_private or tag.group in (0x0000, 0x0002):
            continue
        if tag in full:
            src = full[tag]
            if src.VR == "SQ" and elem.VR == "SQ" and elem.value and len(elem.value) > 0:
                out.add(DataElement(tag, "SQ", [project(item, elem.value[0]) for item in src.value]))
            else:
                out.add(DataElement(tag, src.VR, src.value))
        else:
            out.add(DataElement(tag, elem.VR, [] if elem.VR == "SQ" else None))
    return out


def with_charset(ds: Dataset, charset: str) -> Dataset:
    ds.SpecificCharacterSet = charset
    return ds
