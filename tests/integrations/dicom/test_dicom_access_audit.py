"""Calling-AE allow-list and DICOM auditing (R10.2.3, R10.5) with DCMTK echoscu / storescu / findscu / getscu."""
from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.config import get_settings, reset_settings_cache
from core.db import get_engine
from domain.imaging_tables import ImagingInstance
from domain.security_tables import AuditRecord
from integrations.dicom import probe
from security.audit import verify_chain
from tests.support.dicom_files import make_image
from tests.support.dicom_tools import free_port, run_tool, running_listener, store_raw


@pytest.fixture
def allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADLOOP_DICOM_ALLOWED_CALLING_AES", "CT1, QRSCU")
    reset_settings_cache()


def _records(event_id: str) -> list[AuditRecord]:
    with Session(get_engine()) as s:
        return list(s.exec(select(AuditRecord).where(AuditRecord.event_id == event_id).order_by(AuditRecord.seq)))


async def _wait_records(lsn: object, event_id: str, n: int, timeout: float = 30) -> list[AuditRecord]:
    deadline = time.monotonic() + timeout
    while True:
        lsn.ctx.auditor.flush()  # type: ignore[attr-defined]
        rows = _records(event_id)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def test_unknown_calling_ae_is_rejected_and_transfers_are_audited(database, allow_list, tmp_path: Path) -> None:
    async with running_listener() as lsn:
        port = str(lsn.port)
        # An AE title not on the list: A-ASSOCIATE-RJ, permanent, "calling AE title not recognized".
        wrong = await run_tool(["echoscu", "-aet", "INTRUDER", "-aec", "RADLOOP", "127.0.0.1", port])
        assert wrong.code != 0
        assert "Association Rejected" in wrong.stderr and "Calling AE Title Not Recognized" in wrong.stderr, wrong.stderr
        assert "Rejected Permanent" in wrong.stderr
        ok = await run_tool(["echoscu", "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port])
        assert ok.code == 0, ok.stderr

        study = generate_uid()
        image = make_image(tmp_path / "ct.dcm", study_uid=study, patient_id="P-AUD", accession="ACC-AUD")
        refused = await run_tool(["storescu", "-aet", "INTRUDER", "-aec", "RADLOOP", "127.0.0.1", port, str(image)])
        assert refused.code != 0 and "Calling AE Title Not Recognized" in refused.stderr
        with Session(get_engine()) as s:
            assert s.exec(select(ImagingInstance).where(ImagingInstance.study_instance_uid == study)).first() is None
        stored = await run_tool(["storescu", "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port, str(image)])
        assert stored.code == 0 and "Store Failed" not in stored.stderr, stored.stderr

        found = await run_tool(["findscu", "-S", "-aet", "QRSCU", "-aec", "RADLOOP", "-k", "QueryRetrieveLevel=STUDY",
                                "-k", "PatientID=P-AUD", "-k", "StudyInstanceUID", "127.0.0.1", port])
        assert found.code == 0, found.stderr
        got = tmp_path / "got"
        got.mkdir()
        fetched = await run_tool(["getscu", "-S", "-aet", "QRSCU", "-aec", "RADLOOP", "-od", str(got),
                                  "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", "127.0.0.1", port])
        assert fetched.code == 0 and len(list(got.iterdir())) == 1, fetched.stderr
        # The API's health probe is admitted from loopback under its own title.
        settings = get_settings().model_copy(update={"dicom_port": lsn.port})
        assert "C-ECHO" in await asyncio.to_thread(probe.c_echo, settings, 10.0)

        alerts = await _wait_records(lsn, "110113", 2)
        assert [(a.username, a.outcome, a.detail["reason"]) for a in alerts] == [
            ("INTRUDER", "failure", "calling AE title not recognized")] * 2
        assert all(a.source == "127.0.0.1" and a.detail["alert_type"] == "110126" for a in alerts)

        transfers = await _wait_records(lsn, "110104", 2)
        by_action = {t.action: t for t in transfers}
        assert set(by_action) == {"C", "R"}
        received, sent = by_action["C"], by_action["R"]
        assert (received.username, received.object_type, received.object_id) == ("CT1", "study", study)
        assert received.detail["instances"] == 1 and received.detail["failed"] == 0
        assert received.detail["patient_id"] == "P-AUD" and received.detail["accession_number"] == "ACC-AUD"
        assert received.detail["sop_classes"] == [str(pydicom.dcmread(image, stop_before_pixels=True).SOPClassUID)]
        assert (sent.username, sent.object_id, sent.detail["instances"], sent.detail["patient_id"]) == (
            "QRSCU", study, 1, "P-AUD")

        queries = await _wait_records(lsn, "110112", 1)
        assert len(queries) == 1
        q = queries[0]
        assert q.username == "QRSCU" and q.action == "E" and q.outcome == "success"
        assert q.detail["keys"] == {"PatientID": "P-AUD", "QueryRetrieveLevel": "STUDY"} and q.detail["matches"] == 1
        with Session(get_engine()) as s:
            assert verify_chain(s, get_settings().audit_checkpoint_keys).ok


async def test_refused_instances_are_audited_as_failed_transfers(sqlite_database, tmp_path: Path) -> None:
    """No allow-list (development default): any AE may store; a truncated object counts as a failure."""
    async with running_listener() as lsn:
        study = generate_uid()
        good = make_image(tmp_path / "good.dcm", study_uid=study, patient_id="P-BAD")
        bad = make_image(tmp_path / "bad.dcm", study_uid=study, patient_id="P-BAD", instance=2)
        bad.write_bytes(bad.read_bytes()[:-1000])
        res = await run_tool(["storescu", "-aet", "ANYONE", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port), str(good)])
        assert res.code == 0, res.stderr
        answer, _ = await asyncio.to_thread(store_raw, lsn.port, bad)  # DCMTK will not send a truncated file
        assert answer is not None and answer.status == 0xC000
        rows = await _wait_records(lsn, "110104", 2, timeout=10)
        by_study = {r.object_id: r for r in rows}
        assert by_study[study].detail["instances"] == 1 and by_study[study].outcome == "success"
        assert by_study[""].detail["failed"] == 1 and by_study[""].outcome == "failure"  # unreadable: no study UID
        assert by_study[study].username == "ANYONE" and by_study[""].username == "BADSCU"


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def test_probe_title_is_admitted_from_loopback_only(sqlite_database, allow_list) -> None:
    from integrations.dicom.listener import make_context, start_threaded

    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    port = free_port()
    settings = get_settings().model_copy(update={"dicom_port": port})
    ctx = make_context(settings)
    ae, _ = start_threaded(ctx, port, host="0.0.0.0")
    try:
        assert "C-ECHO" in await asyncio.to_thread(probe.c_echo, settings, 10.0)  # from 127.0.0.1
        with pytest.raises(probe.ListenerDown):
            await asyncio.to_thread(probe.c_echo, settings, 10.0, address)  # the same title from outside
        ctx.auditor.flush()
        deadline = time.monotonic() + 10
        while not (alerts := _records("110113")) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert [(a.username, a.source, a.detail["reason"]) for a in alerts] == [
            ("RADLOOP-HEALTH", address, "health-probe AE title from a non-loopback address")]
    finally:
        await asyncio.to_thread(ae.shutdown)
