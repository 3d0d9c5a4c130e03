"""From MLLP payload bytes to a validated HL7 v2 message (v2.3.1 - v2.5.1).

Why the header is read by hand before hl7apy sees anything: the charset is named
inside the message (MSH-18), GB18030 trail bytes can equal '|' or '^', so the
bytes must be decoded before they are split; and an ACK must be built even for a
message that is refused, which needs MSH-10 and the sender's encoding characters.

The message is parsed once, by RadLoop's own split; handlers read fields from it and
keep their field rules to themselves. hl7apy supplies the verdict on structure from its
reference tables for the message's own version: every segment ID must be one that
version defines (or a Z-segment), and MSH-2 holds exactly four encoding characters
before v2.7. Those are the only refusals of hl7apy's full parse at the tolerant level
we used (1,500 random field mutations of an order found no other); building its object
tree cost 6-10 ms of CPU per message, in a process pool, for no further verdict
(`hl7apy_check` keeps that parse: tests hold the two verdicts equal).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from hl7apy import load_library
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from pydantic import BaseModel

SUPPORTED_VERSIONS = ("2.3.1", "2.4", "2.5", "2.5.1")
# P production, D debugging. T (training) is refused: training traffic must never start a real loop.
ACCEPTED_PROCESSING_IDS = ("P", "D")
DEFAULT_CHARSET = "UNICODE UTF-8"  # when MSH-18 is empty; UTF-8 is a superset of the standard's ASCII

# HL7 table 0211 (alternate character sets) -> Python codec. Only ASCII-compatible
# encodings: MLLP framing and the MSH prefix must stay readable byte by byte.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "GB2312": "gb18030",
    "BIG-5": "big5",
    "KS X 1001": "euc_kr",
}


class ErrorCode(IntEnum):
    """HL7 table 0357 (message error condition codes)."""

    segment_sequence = 100
    required_field_missing = 101
    data_type_error = 102
    table_value_not_found = 103
    unsupported_message_type = 200
    unsupported_event = 201
    unsupported_processing_id = 202
    unsupported_version = 203
    unknown_key = 204
    duplicate_key = 205
    record_locked = 206
    internal_error = 207

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Location:
    """Where an error is: segment ID, segment sequence (1-based), field, component."""

    segment: str
    field: int | None = None
    component: int | None = None
    sequence: int = 1

    def __str__(self) -> str:
        out = self.segment
        if self.field is not None:
            out += f"-{self.field}"
            if self.component is not None:
                out += f".{self.component}"
        return out


@dataclass(frozen=True)
class Issue:
    code: ErrorCode
    text: str
    location: Location | None = None


class HL7Reject(Exception):
    """A message refused as a whole: AR (cannot/will not process) or AE (content error)."""

    def __init__(self, ack: Literal["AE", "AR"], issues: list[Issue], transient: bool = False,
                 header: MessageHeader | None = None) -> None:
        super().__init__("; ".join(i.text for i in issues))
        self.ack = ack
        self.issues = issues
        self.header = header  # what could be read of MSH, to address the ACK
        # A transient AR (system busy/down) must not be replayed for a resend: the resend may succeed.
        self.transient = transient


def reject(ack: Literal["AE", "AR"], code: ErrorCode, text: str, location: Location | None = None,
           transient: bool = False, header: MessageHeader | None = None) -> HL7Reject:
    return HL7Reject(ack, [Issue(code, text, location)], transient=transient, header=header)


class Encoding(BaseModel):
    """The message's delimiters (MSH-1, MSH-2); the ACK answers in the same ones."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    def escape_text(self, text: str) -> str:
        """Escape delimiter characters in free text (HL7 \\F\\ \\S\\ \\T\\ \\R\\ \\E\\)."""
        if not text:
            return text
        out = text.replace(self.escape, "\x00E")
        for ch, code in ((self.field, "F"), (self.component, "S"), (self.subcomponent, "T"),
                         (self.repetition, "R")):
            out = out.replace(ch, f"\x00{code}")
        out = re.sub(r"[\r\n]+", " ", out)
        return re.sub("\x00([EFSTR])", lambda m: f"{self.escape}{m.group(1)}{self.escape}", out)

    def unescape(self, text: str) -> str:
        if self.escape not in text:
            return text
        mapping = {"F": self.field, "S": self.component, "T": self.subcomponent,
                   "R": self.repetition, "E": self.escape}
        esc = re.escape(self.escape)

        def sub(m: re.Match[str]) -> str:
            body = m.group(1)
            if body in mapping:
                return mapping[body]
            if body.startswith("X") and re.fullmatch(r"X([0-9A-Fa-f]{2})+", body):
                return bytes.fromhex(body[1:]).decode("latin-1")
            if body in (".br", "H", "N"):
                return "\n" if body == ".br" else ""
            return m.group(0)

        return re.sub(f"{esc}([^{esc}]*){esc}", sub, text)


class MessageHeader(BaseModel):
    """MSH, as RadLoop reads it (enough to route, deduplicate and answer)."""

    encoding: Encoding
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    trigger_event: str = ""
    structure: str = ""
    control_id: str = ""
    processing_id: str = ""
    version: str = ""
    accept_ack_type: str = ""  # MSH-15: AL / NE / ER / SU; empty = original mode
    application_ack_type: str = ""  # MSH-16
    charset: str = ""  # MSH-18 as sent
    codec: str = "utf-8"

    @property
    def type_event(self) -> str:
        return f"{self.message_type}^{self.trigger_event}" if self.trigger_event else self.message_type

    @property
    def enhanced_mode(self) -> bool:
        """Enhanced acknowledgment mode when the sender fills MSH-15 or MSH-16."""
        return bool(self.accept_ack_type or self.application_ack_type)

    @property
    def sender(self) -> str:
        """Whose control-ID space MSH-10 belongs to."""
        return f"{self.sending_application}|{self.sending_facility}"


@dataclass(frozen=True)
class Seg:
    """One segment as ER7 text split on the field separator: fields[n] is field n (MSH: MSH-n)."""

    name: str
    fields: tuple[str, ...]
    sequence: int = 1  # 1-based position among segments of the same name

    def field(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""


def split_segments(text: str, enc: Encoding) -> list[Seg]:
    out: list[Seg] = []
    seen: dict[str, int] = {}
    for line in text.split("\r"):
        parts = line.split(enc.field)
        name = parts[0]
        if name == "MSH":  # MSH-1 is the separator itself: shift so fields[n] is MSH-n
            parts = ["MSH", enc.field, *parts[1:]]
        seen[name] = seen.get(name, 0) + 1
        out.append(Seg(name, tuple(parts), seen[name]))
    return out


@dataclass
class ParsedMessage:
    header: MessageHeader
    text: str
    segments: list[Seg] = field(default_factory=list)

    def all(self, segment_id: str) -> list[Seg]:
        return [s for s in self.segments if s.name == segment_id]

    def first(self, segment_id: str) -> Seg | None:
        return next((s for s in self.segments if s.name == segment_id), None)

    def reps(self, seg: Seg | None, n: int) -> list[str]:
        """Raw ER7 of each non-empty repetition of field n (escapes intact)."""
        if seg is None:
            return []
        value = seg.field(n)
        if not value:
            return []
        if seg.name == "MSH" and n in (1, 2):
            return [value]
        return value.split(self.header.encoding.repetition)

    def get(self, seg: Seg | None, n: int, component: int = 1, rep: int = 0, sub: int = 1) -> str:
        """One unescaped value: field n, repetition `rep`, component, subcomponent (1-based)."""
        values = self.reps(seg, n)
        if rep >= len(values):
            return ""
        return self.split(values[rep], component, sub)

    def split(self, er7: str, component: int = 1, sub: int = 1) -> str:
        enc = self.header.encoding
        comps = er7.split(enc.component)
        if component > len(comps):
            return ""
        subs = comps[component - 1].split(enc.subcomponent)
        if sub > len(subs):
            return ""
        return enc.unescape(subs[sub - 1]).strip()


_SEGMENT_SPLIT = re.compile(r"\r\n|\n|\r")


def _normalise(text: str) -> str:
    """Segments end in CR; tolerate LF and CRLF from senders that get that wrong."""
    return "\r".join(s for s in _SEGMENT_SPLIT.split(text) if s.strip())


def read_header(raw: bytes) -> MessageHeader:
    """Read MSH from the bytes (before decoding), then decode with the charset it names.

    Raises HL7Reject(AR) when there is no usable MSH or the charset is unknown.
    """
    start = raw.lstrip()
    if not start.startswith(b"MSH") or len(start) < 8:
        raise reject("AR", ErrorCode.segment_sequence, "message does not start with an MSH segment",
                     Location("MSH"))
    sep = chr(start[3])
    if sep.isalnum() or sep.isspace() or ord(sep) > 126 or ord(sep) < 33:
        raise reject("AR", ErrorCode.data_type_error, f"invalid field separator {sep!r} in MSH-1",
                     Location("MSH", 1))
    msh_line = _SEGMENT_SPLIT.split(start.decode("latin-1"), maxsplit=1)[0]
    fields = msh_line.split(sep)
    enc_chars = fields[1] if len(fields) > 1 else ""
    if len(enc_chars) < 4 or len(set(enc_chars[:4] + sep)) != 5 or any(c.isalnum() or c.isspace()
                                                                      for c in enc_chars[:4]):
        raise reject("AR", ErrorCode.data_type_error,
                     f"invalid encoding characters {enc_chars!r} in MSH-2", Location("MSH", 2))
    encoding = Encoding(field=sep, component=enc_chars[0], repetition=enc_chars[1],
                        escape=enc_chars[2], subcomponent=enc_chars[3])

    def msh(n: int) -> str:  # MSH-n is fields[n-1]: MSH-1 is the separator itself
        return fields[n - 1] if n - 1 < len(fields) else ""

    def header_from(fields: list[str], charset: str, codec: str) -> MessageHeader:
        def comp(n: int, c: int) -> str:
            value = fields[n - 1] if n - 1 < len(fields) else ""
            parts = value.split(encoding.repetition)[0].split(encoding.component)
            return encoding.unescape(parts[c - 1]).strip() if c <= len(parts) else ""

        return MessageHeader(
            encoding=encoding,
            sending_application=comp(3, 1), sending_facility=comp(4, 1),
            receiving_application=comp(5, 1), receiving_facility=comp(6, 1),
            message_type=comp(9, 1).upper(), trigger_event=comp(9, 2).upper(), structure=comp(9, 3).upper(),
            control_id=comp(10, 1), processing_id=comp(11, 1).upper(), version=comp(12, 1),
            accept_ack_type=comp(15, 1).upper(), application_ack_type=comp(16, 1).upper(),
            charset=charset, codec=codec,
        )

    # Until the charset is known, answer in UTF-8 without naming a charset.
    provisional = header_from(fields, "", "utf-8")
    charset_label = msh(18).split(encoding.repetition)[0].split(encoding.component)[0].strip()
    codec = CHARSETS.get((charset_label or DEFAULT_CHARSET).upper())
    if codec is None:
        raise reject("AR", ErrorCode.table_value_not_found,
                     f"unsupported character set {charset_label!r} in MSH-18", Location("MSH", 18),
                     header=provisional)
    try:
        text = start.decode(codec)
    except UnicodeDecodeError as err:
        raise reject("AE", ErrorCode.data_type_error,
                     f"message bytes are not valid {charset_label or DEFAULT_CHARSET} "
                     f"at byte {err.start}", Location("MSH", 18), header=provisional) from None
    return header_from(_SEGMENT_SPLIT.split(text, maxsplit=1)[0].split(sep), charset_label, codec)


def decode(raw: bytes, header: MessageHeader) -> str:
    return _normalise(raw.lstrip().decode(header.codec))


def check_header(header: MessageHeader, supported: dict[str, set[str]]) -> None:
    """MSH rules shared by every message type; `supported` maps message type -> trigger events."""
    if not header.control_id:
        raise reject("AR", ErrorCode.required_field_missing, "MSH-10 message control ID is required",
                     Location("MSH", 10))
    if not header.message_type:
        raise reject("AR", ErrorCode.required_field_missing, "MSH-9 message type is required", Location("MSH", 9))
    if header.version not in SUPPORTED_VERSIONS:
        raise reject("AR", ErrorCode.unsupported_version,
                     f"unsupported HL7 version {header.version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}",
                     Location("MSH", 12))
    if header.processing_id not in ACCEPTED_PROCESSING_IDS:
        raise reject("AR", ErrorCode.unsupported_processing_id,
                     f"unsupported processing ID {header.processing_id!r}; accepted: "
                     f"{', '.join(ACCEPTED_PROCESSING_IDS)}", Location("MSH", 11))
    if header.message_type not in supported:
        raise reject("AR", ErrorCode.unsupported_message_type,
                     f"unsupported message type {header.message_type!r}", Location("MSH", 9, 1))
    if header.trigger_event not in supported[header.message_type]:
        raise reject("AR", ErrorCode.unsupported_event,
                     f"unsupported trigger event {header.type_event!r}", Location("MSH", 9, 2))
    for name, value in (("MSH-15", header.accept_ack_type), ("MSH-16", header.application_ack_type)):
        if value and value not in ("AL", "NE", "ER", "SU"):
            raise reject("AR", ErrorCode.table_value_not_found, f"{name} {value!r} is not AL/NE/ER/SU",
                         Location("MSH", 15 if name == "MSH-15" else 16))


def _check_segment_lines(text: str, header: MessageHeader) -> None:
    for n, line in enumerate(text.split("\r"), start=1):
        seg_id = line[:3]
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", seg_id) or (len(line) > 3 and line[3] != header.encoding.field):
            raise reject("AE", ErrorCode.segment_sequence,
                         f"segment {n} is not an HL7 segment ({line[:12]!r})", Location(seg_id or "?", sequence=n))


@functools.cache
def known_segments(version: str) -> frozenset[str]:
    """The segment IDs hl7apy's reference tables define for `version`."""
    return frozenset(load_library(version).SEGMENTS)


def structure_problem(text: str, header: MessageHeader) -> str | None:
    """hl7apy's verdict on the message's structure, from its tables (see the module docstring): None or why."""
    enc_chars = text.split("\r", 1)[0].split(header.encoding.field)[1] if text.startswith("MSH") else ""
    if len(enc_chars) > 4:
        return f"InvalidEncodingChars: Invalid encoding chars: Found {len(enc_chars)} encoding chars"
    known = known_segments(header.version)
    for line in text.split("\r"):
        seg_id = line[:3]
        if seg_id not in known and not seg_id.startswith("Z"):
            return f"InvalidName: Invalid name for Segment: {seg_id}"
    return None


def hl7apy_check(text: str) -> str | None:
    """hl7apy's full parse at the tolerant level RadLoop used: None or the reason (the oracle in tests)."""
    try:
        parse_message(text, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    except Exception as err:  # noqa: BLE001 - every hl7apy refusal is a content error to report
        return f"{type(err).__name__}: {err}"
    return None


def parse(text: str, header: MessageHeader) -> ParsedMessage:
    """Check segment lines and structure, split once; content errors -> HL7Reject(AE)."""
    _check_segment_lines(text, header)
    if (problem := structure_problem(text, header)) is not None:
        raise reject("AE", ErrorCode.data_type_error, f"cannot parse message: {problem}")
    return ParsedMessage(header=header, text=text, segments=split_segments(text, header.encoding))
