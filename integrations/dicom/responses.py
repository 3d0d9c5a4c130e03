"""Shaping C-FIND responses: requested keys only, in a character set that carries Chinese.

PS3.4 C.2.2.1: a response carries the keys the query asked for (with values when
known, zero length otherwise) and nothing else. For a sequence key with an
item, the item's keys are the requested sub-keys; an empty sequence key asks for
the whole sequence.

Matches are described as plain `Values` (tag -> (VR, value)) and only the
requested elements become pydicom objects: building full datasets attribute by
attribute cost ~1 ms per worklist item, most of the MWL latency budget.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.valuerep import PersonName

# Character sets that can carry 张三; a query in one of them is answered in the same one.
CHINESE_CAPABLE = ("ISO_IR 192", "GB18030", "GBK")
DEFAULT_CHARSET = "ISO_IR 192"
_CHARSET_TAG = Tag(0x0008, 0x0005)

Values = dict[int, tuple[str, Any]]  # tag -> (VR, value); an SQ value is a list[Values]


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
