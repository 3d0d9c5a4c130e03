"""The HL7 message log search and the outbound backlog over HTTP."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlmodel import Session

from core.db import get_engine
from domain.hl7_tables import HL7Message
from integrations.hl7 import log as msglog
from integrations.hl7.context import new_session
from integrations.hl7.parse import read_header

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def _message(**fields) -> HL7Message:
    base = dict(id=str(uuid.uuid4()), direction="inbound", control_id="C1", message_type="ORM^O01", version="2.5.1",
                sending_application="HIS", raw="MSH|^~\\&|HIS\rPID|1||M1^^^MRN||张^三".encode(), raw_size=30,
                status="processed", ack_code="AA", ack_raw=b"MSH|^~\\&|RADLOOP\rMSA|AA|C1", received_at=T0,
                charset="UNICODE UTF-8")
    return HL7Message(**{**base, **fields})


def _store(*rows: HL7Message) -> None:
    with Session(get_engine()) as s:
        s.add_all(rows)
        s.commit()


async def test_auditor_searches_the_log_by_control_id_patient_accession_and_time(api, auth) -> None:
    _store(
        _message(control_id="NW-1", patient_id="p-1", patient_identifier="M1", accession_number="A1"),
        _message(control_id="NW-2", patient_id="p-2", accession_number="A2", received_at=T0 + timedelta(days=2)),
        _message(control_id="OUT-1", direction="outbound", status="delivered", accession_number="A1",
                 received_at=T0 + timedelta(hours=1)),
    )

    async def ids(query: str) -> list[str]:
        r = await api.get(f"/api/v1/hl7/messages?{query}", headers=auth("auditor"))
        assert r.status_code == 200, r.text
        return [m["control_id"] for m in r.json()["items"]]

    assert await ids("control_id=NW-1") == ["NW-1"]
    assert await ids("patient=M1") == ["NW-1"] and await ids("patient=p-2") == ["NW-2"]
    assert await ids("accession=A1") == ["OUT-1", "NW-1"]  # newest first
    assert await ids("accession=A1&direction=inbound") == ["NW-1"]
    assert await ids("since=2026-11-21T00:00:00Z") == ["NW-2"]
    assert await ids("until=2026-11-20T08:30:00") == ["NW-1"]  # a time without a zone is UTC
    r = await api.get("/api/v1/hl7/messages?control_id=NW-1&include_raw=true", headers=auth("auditor"))
    [item] = r.json()["items"]
    assert "张^三" in item["raw"] and "MSA|AA|C1" in item["ack"]
    plain = (await api.get("/api/v1/hl7/messages?control_id=NW-1", headers=auth("auditor"))).json()["items"][0]
    assert plain["raw"] is None
    assert (await api.get("/api/v1/hl7/messages", headers=auth("system_admin"))).status_code == 403


async def test_operator_sees_the_outbound_backlog_oldest_first(api, auth) -> None:
    _store(
        _message(control_id="S-2", direction="outbound", status="pending", attempts=3, error="HIS unreachable",
                 received_at=T0 + timedelta(minutes=5)),
        _message(control_id="S-1", direction="outbound", status="queued", received_at=T0),
        _message(control_id="S-0", direction="outbound", status="delivered", received_at=T0 - timedelta(hours=1)),
    )
    r = await api.get("/api/v1/hl7/backlog", headers=auth("system_admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 2 and [i["control_id"] for i in body["items"]] == ["S-1", "S-2"]
    assert body["items"][1]["attempts"] == 3 and body["items"][1]["error"] == "HIS unreachable"
    assert body["oldest_queued_at"].startswith("2026-11-20T08:00")
    assert "patient_id" not in body["items"][0]


async def test_sealed_log_row_is_read_whole_by_the_auditor_and_found_by_accession_mrn_and_id_card(api, auth) -> None:
    """R10.3.3: the row holds no clear number, the auditor still reads the message and finds it."""
    id_card, phone = "110101197005010013", "13912345678"
    raw = (f"MSH|^~\\&|HIS|MAIN|RADLOOP|RAD|20261127120000||ORM^O01^ORM_O01|SEAL-1|P|2.5.1\r"
           f"PID|1||MRN-S1^^^MRN^MR~{id_card}^^^CHN^NNCHN||张^三||19700501|M|||||^^^^^^{phone}\r").encode()
    ack = b"MSH|^~\\&|RADLOOP|RAD|HIS|MAIN|20261127120001||ACK^O01^ACK|A-SEAL-1|P|2.5.1\rMSA|AA|SEAL-1"
    header = read_header(raw)
    for summary in ({"patient_id": "p-s1", "patient_identifier": "MRN-S1", "patient_identifier_system": "MRN",
                     "accession_number": "A-SEAL-1"},
                    {"patient_id": "p-s1", "patient_identifier": id_card, "patient_identifier_system": "ID_CARD"}):
        msglog.record(new_session, header, raw, "127.0.0.1:1", T0, msglog.Outcome(
            status="processed", ack=ack, ack_code="AA", summary=summary, error=None, processing_ms=1.0,
            transient=False))
    with get_engine().connect() as conn:
        stored = [bytes(v).decode("latin-1") if isinstance(v, (bytes, memoryview)) else str(v)
                  for r in conn.execute(text("SELECT * FROM hl7_message")).all() for v in r]
    assert not any(id_card in v or phone in v for v in stored)

    async def found(query: str) -> list[dict]:
        r = await api.get(f"/api/v1/hl7/messages?{query}", headers=auth("auditor"))
        assert r.status_code == 200, r.text
        return r.json()["items"]

    [by_accession] = await found("accession=A-SEAL-1&include_raw=true")
    assert id_card in by_accession["raw"] and phone in by_accession["raw"] and "MSA|AA|SEAL-1" in by_accession["ack"]
    assert [m["summary"]["patient_identifier"] for m in await found("patient=MRN-S1")] == ["MRN-S1"]
    [by_card] = await found(f"patient={id_card}")
    assert by_card["summary"]["patient_identifier"] == "1101**********0013"
