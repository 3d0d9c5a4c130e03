"""The HL7 message log at rest (R10.2.2, R10.3.3): no clear ID card or phone number in its rows."""
from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, select

from core.db import get_engine
from domain.hl7_tables import HL7Message, clear_ack, clear_raw
from integrations.hl7 import log as msglog
from tests.integrations.hl7.messages import ack_fields, msh, pid

ID_CARD = "110101197005010013"
PHONE = "13912345678"


def a04(control_id: str) -> bytes:
    """ID card number first in PID-3 (it becomes the log's patient column), an MRN second, a phone in PID-13."""
    return "\r".join([msh("ADT^A04^ADT_A01", control_id), pid("", extra={
        3: f"{ID_CARD}^^^CHN^NNCHN~MRN-R1^^^MRN^MR", 13: f"^^^^^^{PHONE}"}), "PV1|1|O|RESP"]).encode()


def stored_text() -> str:
    """Every column of every log row as the database holds it (bytes read as text, so a clear number shows)."""
    with get_engine().connect() as conn:
        rows = conn.execute(text("SELECT * FROM hl7_message")).all()
    cells = [bytes(v).decode("latin-1") if isinstance(v, (bytes, memoryview)) else str(v) for r in rows for v in r]
    return "\n".join(cells)


async def test_a04_is_logged_without_clear_numbers_and_a_resend_gets_the_same_ack(listener_on_each_database) -> None:
    listener = listener_on_each_database
    ack = await listener.send(a04("AT-REST-1"))
    assert ack_fields(ack)["MSA"][1] == "AA", ack

    at_rest = stored_text()
    assert ID_CARD not in at_rest and PHONE not in at_rest
    assert "MRN-R1" not in at_rest  # the raw message is sealed whole, not only its numbers
    assert "1101**********0013" in at_rest  # the patient column keeps the masked display form

    with Session(get_engine()) as s:
        row = s.exec(select(HL7Message).where(HL7Message.control_id == "AT-REST-1")).one()
        assert ID_CARD in clear_raw(row).decode() and PHONE in clear_raw(row).decode()
        assert clear_ack(row) == ack
        assert row.summary["patient_identifier"] == row.patient_identifier == "1101**********0013"
        # A search by the whole number (typed in lower case) or the RadLoop ID finds it; a fragment does not.
        for patient in (ID_CARD, ID_CARD.lower(), row.patient_id):
            assert [m.id for m in msglog.search(s, patient=patient)] == [row.id]
        assert msglog.search(s, patient=ID_CARD[:12]) == []

    # Same MSH-10 again: the stored (sealed) ACK is opened and replayed byte for byte.
    assert await listener.send(a04("AT-REST-1")) == ack
    with Session(get_engine()) as s:
        rows = s.exec(select(HL7Message).where(HL7Message.control_id == "AT-REST-1")).all()
        assert sorted(r.status for r in rows) == ["duplicate", "processed"]
        assert all(clear_ack(r) == ack for r in rows)
    assert ID_CARD not in stored_text() and PHONE not in stored_text()


async def test_a_message_in_gb18030_comes_back_byte_for_byte(offline_listener) -> None:
    message = "\r".join([msh("ADT^A04^ADT_A01", "AT-REST-GB", charset="GB 18030-2000"),
                         pid("MRN-GB1", name="李^四"), "PV1|1|O|RESP"]).encode("gb18030")
    await offline_listener.send(message)
    with Session(get_engine()) as s:
        row = s.exec(select(HL7Message).where(HL7Message.control_id == "AT-REST-GB")).one()
        assert clear_raw(row).rstrip(b"\r") == message  # the log stores segments \r-terminated
        assert row.patient_identifier == "MRN-GB1" and row.patient_identifier_bidx is None  # record numbers clear


async def test_reindex_seals_log_rows_written_in_clear_before_sealing(offline_listener) -> None:
    """`python -m security.field_crypto reindex` also seals what the log held in clear before this change."""
    from security import field_crypto

    ack = await offline_listener.send(a04("AT-REST-OLD"))
    with Session(get_engine()) as s:
        row = s.exec(select(HL7Message).where(HL7Message.control_id == "AT-REST-OLD")).one()
        message, row_id = clear_raw(row), row.id
    with get_engine().begin() as conn:  # as an older release wrote it: in clear
        conn.execute(text("UPDATE hl7_message SET raw = :raw, ack_raw = :ack WHERE id = :id"),
                     {"raw": message, "ack": ack, "id": row_id})
    assert ID_CARD in stored_text()
    with Session(get_engine()) as s:
        assert field_crypto.reindex(s) >= 1
    assert ID_CARD not in stored_text()
    with Session(get_engine()) as s:
        row = s.get(HL7Message, row_id)
        assert clear_raw(row) == message and clear_ack(row) == ack
