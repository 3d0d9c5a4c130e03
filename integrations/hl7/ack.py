"""ACK messages: original mode (AA/AE/AR) and enhanced mode accept acks (CA/CE/CR).

The ACK answers in the sender's own delimiters, version and character set, so a
receiver that only understands what it sent can read it. Errors travel in ERR
segments in the shape the sender's version defines (ERR-1 up to v2.4, ERR-2/3/4/8
from v2.5) and, for older readers, as text in MSA-3.

RadLoop processes a message before it answers, so in enhanced mode the commit
decision is the processing decision: CA once the effect is durable, CE with ERR
when the content cannot be committed, CR when the type/version/processing ID is
refused. MSH-15 decides whether that accept ack is sent at all (AL/NE/ER/SU).
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from core.config import get_settings
from integrations.hl7.parse import Encoding, ErrorCode, Issue, MessageHeader

AckCode = Literal["AA", "AE", "AR"]
ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}
RADLOOP_APP = "RADLOOP"
# Used when a message is so broken that its header cannot be read.
FALLBACK_HEADER = MessageHeader(encoding=Encoding(), version="2.5.1", charset="", codec="utf-8")


def hl7_timestamp(now: datetime | None = None) -> str:
    tz = ZoneInfo(get_settings().timezone)
    return (now or datetime.now(tz)).astimezone(tz).strftime("%Y%m%d%H%M%S%z")


def response_code(code: AckCode, header: MessageHeader) -> str:
    return ENHANCED[code] if header.enhanced_mode else code


def accept_ack_wanted(code: AckCode, header: MessageHeader) -> bool:
    """Enhanced mode: MSH-15 says whether the accept ack is sent; original mode: always."""
    if not header.enhanced_mode:
        return True
    wanted = header.accept_ack_type or "AL"
    return wanted == "AL" or (wanted == "ER" and code != "AA") or (wanted == "SU" and code == "AA")


def ack_version(header: MessageHeader) -> str:
    """Answer in the sender's version when we support it, else in the newest we speak."""
    return header.version if header.version in ("2.3.1", "2.4", "2.5", "2.5.1") else "2.5.1"


def _err_segment(issue: Issue, header: MessageHeader) -> str:
    enc = header.encoding
    f, c, s = enc.field, enc.component, enc.subcomponent
    loc = issue.location
    code = f"{int(issue.code)}"
    label = enc.escape_text(issue.code.label)
    if ack_version(header) in ("2.5", "2.5.1"):
        erl = ""
        if loc is not None:
            erl = c.join([loc.segment, str(loc.sequence), str(loc.field or ""), "1" if loc.field else "",
                          str(loc.component or "")]).rstrip(c)
        severity = "E"
        return f.join(["ERR", "", erl, c.join([code, label, "HL70357"]), severity, "", "", "",
                       enc.escape_text(issue.text)])
    # v2.3.1 / v2.4: ERR-1 error code and location (ELD), text in the CE's text subcomponent.
    parts = [loc.segment if loc else "", str(loc.sequence) if loc else "", str(loc.field or "") if loc else "",
             s.join([code, enc.escape_text(issue.text)[:200] or label, "HL70357"])]
    return f.join(["ERR", c.join(parts)])


def application_ack_wanted(code: AckCode, header: MessageHeader) -> bool:
    """Enhanced mode: MSH-16 asks for a separate application ACK (empty = never, conservatively)."""
    wanted = header.application_ack_type
    return header.enhanced_mode and (
        wanted == "AL" or (wanted == "ER" and code != "AA") or (wanted == "SU" and code == "AA"))


def build_ack(header: MessageHeader, code: AckCode, issues: list[Issue] | None = None,
              text: str = "", application_ack: bool = False) -> str:
    """The ACK for `header`'s message, as text (encode with `header.codec`).

    `application_ack`: the enhanced-mode application ACK, a message of its own that
    RadLoop sends to the HIS: original codes (AA/AE/AR), and it asks for the HIS's
    accept ACK (MSH-15 AL) so its delivery can be confirmed.
    """
    enc = header.encoding
    f, c = enc.field, enc.component
    issues = issues or []
    ack = code if application_ack else response_code(code, header)
    version = ack_version(header)
    msh = [
        "MSH", enc.msh2, RADLOOP_APP, RADLOOP_APP,
        enc.escape_text(header.sending_application), enc.escape_text(header.sending_facility),
        hl7_timestamp(), "", c.join(["ACK", header.trigger_event, "ACK"]) if header.trigger_event else "ACK",
        f"ACK{uuid.uuid4().hex[:17].upper()}", header.processing_id or "P", version,
        # An accept ACK is never acknowledged itself; in original mode MSH-15/16 stay empty.
        "", "", *(["AL", "NE"] if application_ack else ["NE", "NE"] if header.enhanced_mode else ["", ""]),
        "", header.charset,
    ]
    while msh and msh[-1] == "":
        msh.pop()
    msa_text = text or "; ".join(
        f"{i.location}: {i.text}" if i.location and not i.text.startswith(str(i.location)) else i.text
        for i in issues)
    msa = f.join(["MSA", ack, enc.escape_text(header.control_id), enc.escape_text(msa_text[:80])]).rstrip(f)
    segments = [f.join(msh), msa] + [_err_segment(i, header) for i in issues]
    return "\r".join(segments)


def encode(ack_text: str, header: MessageHeader) -> bytes:
    return ack_text.encode(header.codec, errors="replace")


def ack_for_error(header: MessageHeader | None, code: AckCode, code_value: ErrorCode, text: str) -> bytes:
    """An ACK for a message that could not be read far enough to know its header."""
    h = header or FALLBACK_HEADER
    return encode(build_ack(h, code, [Issue(code_value, text)]), h)
