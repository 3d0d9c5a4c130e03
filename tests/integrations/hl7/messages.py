"""Build HL7 test messages by field number, so a test says `PID-3` and never counts pipes."""
from __future__ import annotations

import uuid
from typing import Any


def seg(name: str, fields: dict[int, str], sep: str = "|") -> str:
    """A segment with field n at position n (MSH: MSH-1 is the separator, MSH-2 starts the text)."""
    if name == "MSH":
        top = max(fields) if fields else 2
        values = [fields.get(n, "") for n in range(2, top + 1)]
        return "MSH" + sep + sep.join(values)
    top = max(fields) if fields else 0
    return sep.join([name] + [fields.get(n, "") for n in range(1, top + 1)])


def msh(msg_type: str, control_id: str | None = None, version: str = "2.5.1", charset: str = "UNICODE UTF-8",
        sending_app: str = "HIS", extra: dict[int, str] | None = None) -> str:
    fields = {2: "^~\\&", 3: sending_app, 4: "MAIN", 5: "RADLOOP", 6: "RAD", 7: "20261127120000",
              9: msg_type, 10: control_id or f"C{uuid.uuid4().hex[:12]}", 11: "P", 12: version, 18: charset}
    fields.update(extra or {})
    return seg("MSH", fields)


def pid(mrn: str, name: str = "张^三", sex: str = "M", dob: str = "19700501", extra: dict[int, str] | None = None) -> str:
    fields = {1: "1", 3: f"{mrn}^^^MRN^MR" if mrn else "", 5: name, 7: dob, 8: sex}
    fields.update(extra or {})
    return seg("PID", fields)


def order_segments(control: str, placer: str, *, modality: str = "CT", code: str = "CT-CHEST",
                   name: str = "胸部CT平扫", body: str = "CHEST", priority: str = "R", filler: str = "",
                   orc_extra: dict[int, str] | None = None, obr_extra: dict[int, str] | None = None) -> list[str]:
    orc: dict[int, str] = {1: control, 2: f"{placer}^HIS", 3: filler, 7: f"^^^^^{priority}",
                           12: "D001^孙^医生", 17: "respiratory^呼吸内科"}
    orc.update(orc_extra or {})
    obr: dict[int, str] = {1: "1", 2: f"{placer}^HIS", 4: f"{code}^{name}", 13: "咳嗽两周",
                           15: f"^^^{body}", 24: modality, 31: "^排除肺部感染"}
    obr.update(obr_extra or {})
    return [seg("ORC", orc), seg("OBR", obr), seg("DG1", {1: "1", 3: "J18.9^肺炎^I10"})]


def orm(control: str = "NW", placer: str | None = None, mrn: str | None = None, *, control_id: str | None = None,
        version: str = "2.5.1", charset: str = "UNICODE UTF-8", name: str = "张^三",
        msh_extra: dict[int, str] | None = None, pid_extra: dict[int, str] | None = None,
        **order: Any) -> str:
    placer = placer or f"P{uuid.uuid4().hex[:8]}"
    mrn = f"MRN{uuid.uuid4().hex[:8]}" if mrn is None else mrn
    lines = [msh("ORM^O01^ORM_O01", control_id, version, charset, extra=msh_extra),
             pid(mrn, name=name, extra=pid_extra), seg("PV1", {1: "1", 2: "O", 3: "RESP"}),
             *order_segments(control, placer, **order)]
    return "\r".join(lines)


def encoded(text: str, codec: str = "utf-8") -> bytes:
    return text.encode(codec)


def ack_fields(ack: bytes, codec: str = "utf-8") -> dict[str, list[str]]:
    """Segments of an ACK by ID -> the fields of the first such segment (index n = field n; MSH shifted)."""
    out: dict[str, list[str]] = {}
    for line in ack.decode(codec).split("\r"):
        if not line:
            continue
        parts = line.split(line[3]) if line.startswith("MSH") else line.split("|")
        if line.startswith("MSH"):
            parts = ["MSH", line[3], *parts[1:]]
        out.setdefault(parts[0], parts)
    return out


def err_segments(ack: bytes, codec: str = "utf-8") -> list[str]:
    return [line for line in ack.decode(codec).split("\r") if line.startswith("ERR")]
