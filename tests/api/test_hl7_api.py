"""The HL7 message log search and the outbound backlog over HTTP."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from sqlmodel import Session

from core.db import get_engine
from domain.hl7_tables import HL7Message

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
