"""Bad input over a real socket: AR/AE with ERR, nothing half-written, the listener stays up.

Temporal is deliberately unreachable here: every refusal must happen before the
loop is touched, and "Temporal down" itself must be an AR the HIS can resend.
"""
from __future__ import annotations

import asyncio
import os

from domain.hl7_tables import clear_ack, clear_raw
from integrations.hl7.mllp import MLLPClient
from tests.integrations.hl7.conftest import counts, messages
from tests.integrations.hl7.messages import ack_fields, err_segments, msh, orm, pid, seg


async def _alive(listener) -> None:
    ack = await listener.send(orm(mrn="", control_id="ALIVE").encode())
    assert ack_fields(ack)["MSA"][1] == "AE"


async def test_no_msh_is_rejected_and_logged(offline_listener) -> None:
    ack = await offline_listener.send(b"PID|1||MRN1\rORC|NW|P1")
    f = ack_fields(ack)
    assert f["MSA"][1] == "AR"
    assert "100^" in err_segments(ack)[0]
    row = messages()[-1]
    assert row.status == "rejected" and clear_raw(row).startswith(b"PID|1") and clear_ack(row) == ack
    await _alive(offline_listener)


async def test_wrong_field_separator(offline_listener) -> None:
    # MSH-1 says '|', the rest of the message uses ',': there is no MSH-10 to acknowledge.
    ack = await offline_listener.send(b"MSH|^~\\&,HIS,MAIN,RADLOOP,RAD,20261127,,ORM^O01,C1,P,2.5.1\rPID,1,,M1")
    assert ack_fields(ack)["MSA"][1] == "AR"
    assert "101^" in err_segments(ack)[0] and "MSH^1^10" in err_segments(ack)[0]
    # An alphanumeric field separator is refused as such.
    ack = await offline_listener.send(b"MSHA^~\\&AHISAMAIN")
    assert ack_fields(ack)["MSA"][1] == "AR" and "MSH^1^1" in err_segments(ack)[0]
    assert counts()["orders"] == 0


async def test_unsupported_version_type_and_processing_id(offline_listener) -> None:
    cases = [
        (orm(control_id="V29", version="2.9"), "203^", "MSH^1^12"),
        (orm(control_id="V22", version="2.2"), "203^", "MSH^1^12"),
        ("\r".join([msh("ORU^R01", "T1"), pid("M1")]), "200^", "MSH^1^9"),
        ("\r".join([msh("ORM^O02", "T2"), pid("M1")]), "201^", "MSH^1^9"),
        (orm(control_id="T3", msh_extra={11: "T"}), "202^", "MSH^1^11"),
        (orm(control_id="T4", charset="EBCDIC"), "103^", "MSH^1^18"),
    ]
    for text, code, where in cases:
        ack = await offline_listener.send(text.encode())
        f = ack_fields(ack)
        assert f["MSA"][1] == "AR", text[:60]
        assert f["MSA"][2] == text.split("|")[9]  # MSA-2 echoes MSH-10
        assert code in err_segments(ack)[0] and where in err_segments(ack)[0], err_segments(ack)
    assert counts() == {"orders": 0, "patients": 0, "messages": len(cases)}


async def test_ten_megabyte_message_is_refused_by_name_and_the_connection_survives(offline_listener) -> None:
    big = orm(control_id="BIG1") + "\rNTE|1||" + "x" * (10 * 1024 * 1024)
    async with MLLPClient("127.0.0.1", offline_listener.port, timeout=30) as client:
        ack = await client.send(big.encode())
        f = ack_fields(ack)
        assert f["MSA"][1] == "AR" and f["MSA"][2] == "BIG1"
        assert "exceeds the frame limit" in err_segments(ack)[0]
        again = await client.send(orm(mrn="", control_id="AFTER").encode())
        assert ack_fields(again)["MSA"][2] == "AFTER"
    assert counts()["orders"] == 0
    big_row = next(m for m in messages() if m.control_id == "BIG1")
    assert big_row.raw_size > 10 * 1024 * 1024 and len(clear_raw(big_row)) <= 65536


async def test_binary_garbage_and_junk(offline_listener) -> None:
    garbage = os.urandom(4096).replace(b"\x1c\x0d", b"").replace(b"\x0b", b"")
    ack = await offline_listener.send(b"Z" + garbage)
    assert ack_fields(ack)["MSA"][1] == "AR"
    # Binary garbage after a good MSH is a content error of that message.
    ack = await offline_listener.send(msh("ORM^O01", "BIN1").encode() + b"\r" + garbage)
    assert ack_fields(ack)["MSA"][1] in ("AE", "AR") and err_segments(ack)
    # Unframed junk: the connection is closed, without an answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", offline_listener.port)
    writer.write(garbage[:100] if garbage[:1] != b"\x0b" else b"junk")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await _alive(offline_listener)
    assert counts()["orders"] == 0 and counts()["patients"] == 0


async def test_content_errors_are_ae_with_err_at_the_field(offline_listener) -> None:
    cases = [
        (orm(mrn="", control_id="E1"), "101^", "PID^1^3"),
        (orm(control_id="E2", modality="XA"), "103^", "OBR^1^24"),
        (orm(control_id="E3", pid_extra={7: "1970-13-45"}), "102^", "PID^1^7"),
        (orm(control_id="E4", pid_extra={8: "Q"}), "103^", "PID^1^8"),
        (orm(control_id="E5", body=""), "101^", "OBR^1^15^1^4"),
        (orm(control_id="E6", code=""), "101^", "OBR^1^4^1^1"),
        (orm("ZZ", control_id="E7"), "103^", "ORC^1^1"),
        (orm(control_id="E8", name="", pid_extra={7: "", 8: ""}), "204^", "PID^1^3"),
    ]
    for text, code, where in cases:
        ack = await offline_listener.send(text.encode())
        f = ack_fields(ack)
        assert f["MSA"][1] == "AE", (text[:80], ack)
        errs = err_segments(ack)
        assert any(code in e and where in e for e in errs), (where, errs)
    assert counts()["orders"] == 0 and counts()["patients"] == 0
    assert {m.status for m in messages()} == {"error"}


async def test_err_shape_follows_the_version(offline_listener) -> None:
    ack = await offline_listener.send(orm(mrn="", control_id="OLD1", version="2.3.1").encode())
    err = err_segments(ack)[0]
    assert err.startswith("ERR|PID^1^3^101&") and ack_fields(ack)["MSH"][12] == "2.3.1"
    ack = await offline_listener.send(orm(mrn="", control_id="NEW1", version="2.5").encode())
    assert err_segments(ack)[0].startswith("ERR||PID^1^3^1|101^Required field missing^HL70357|E|")


async def test_sender_encoding_characters_are_honoured(offline_listener) -> None:
    text = "\r".join([
        seg("MSH", {2: "$*\\@", 3: "HIS", 4: "MAIN", 5: "RADLOOP", 7: "20261127", 9: "ORM$O01", 10: "ENC1",
                    11: "P", 12: "2.5.1"}, sep="#"),
        seg("PID", {1: "1", 5: "O\\T\\Brien$Pat", 7: "19700501", 8: "F"}, sep="#"),
        seg("ORC", {1: "NW", 2: "PX1$HIS"}, sep="#"),
        seg("OBR", {1: "1", 4: "CT-HEAD$Head CT", 15: "$$$HEAD", 24: "CT"}, sep="#"),
    ])
    ack = await offline_listener.send(text.encode())
    lines = ack.decode().split("\r")
    assert lines[0].startswith("MSH#$*\\@#RADLOOP#") and "ACK$O01$ACK" in lines[0]
    assert lines[1].startswith("MSA#AE#ENC1")
    assert lines[2].startswith("ERR##PID$1$3$1#101$")


async def test_temporal_down_is_a_transient_ar_and_the_resend_is_processed_again(offline_listener) -> None:
    text = orm(control_id="DOWN1").encode()
    first = await offline_listener.send(text)
    assert ack_fields(first)["MSA"][1] == "AR" and "207^" in err_segments(first)[0]
    second = await offline_listener.send(text)
    assert ack_fields(second)["MSA"][1] == "AR"
    rows = [m for m in messages() if m.control_id == "DOWN1"]
    # Not a replay: both receipts were processed (the dedup key was freed), nothing half-created.
    assert [r.status for r in rows] == ["rejected", "rejected"] and all(r.dedup_key is None for r in rows)
    assert counts()["orders"] == 0


async def test_enhanced_mode_accept_acks(offline_listener) -> None:
    ack = await offline_listener.send(orm(mrn="", control_id="ENH1", msh_extra={15: "AL", 16: "AL"}).encode())
    f = ack_fields(ack)
    assert f["MSA"][1] == "CE" and f["MSH"][15] == "NE" and err_segments(ack)
    ack = await offline_listener.send(orm(control_id="ENH2", version="2.9", msh_extra={15: "AL"}).encode())
    assert ack_fields(ack)["MSA"][1] == "CR"
    # MSH-15 SU: no accept ack for an error; the connection stays usable and the log has the verdict.
    async with MLLPClient("127.0.0.1", offline_listener.port, timeout=0.5) as client:
        try:
            await client.send(orm(mrn="", control_id="ENH3", msh_extra={15: "SU", 16: "AL"}).encode())
            raise AssertionError("an accept ack was sent although MSH-15 is SU and the message failed")
        except TimeoutError:
            pass
    row = next(m for m in messages() if m.control_id == "ENH3")
    assert row.ack_code == "CE" and row.application_ack_code == "AE"
    await _alive(offline_listener)
