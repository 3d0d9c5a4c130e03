"""Storage Commitment Push Model (N-ACTION / N-EVENT-REPORT), with pynetdicom as the modality."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from sqlmodel import Session

from core.config import reset_settings_cache
from core.db import get_engine
from domain.imaging_tables import StorageCommitment
from tests.support.dicom_files import make_image
from tests.support.dicom_tools import free_port, run_tool, running_listener

WELL_KNOWN = "1.2.840.10008.1.20.1.1"


def request(transaction: str, refs: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction
    items = []
    for cls, uid in refs:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = cls, uid
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


def ask(port: int, ds: Dataset, wait_for_report: bool) -> tuple[int, list[tuple[int, Dataset]]]:
    """N-ACTION, then (optionally) keep the association open until the N-EVENT-REPORT arrives."""
    reports: list[tuple[int, Dataset]] = []
    got = threading.Event()

    def on_report(event: evt.Event) -> tuple[int, None]:
        reports.append((event.event_type, event.event_information))
        got.set()
        return 0x0000, None

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADLOOP", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    assert assoc.is_established
    status, _ = assoc.send_n_action(ds, 1, StorageCommitmentPushModel, WELL_KNOWN)
    if wait_for_report:
        got.wait(10)
    assoc.release()
    return int(status.Status), reports


@pytest.fixture
def modality_port(monkeypatch: pytest.MonkeyPatch) -> int:
    port = free_port()
    monkeypatch.setenv("RADLOOP_DICOM_MOVE_DESTINATIONS", f"MODALITY=127.0.0.1:{port}")
    reset_settings_cache()
    return port


async def test_commitment_on_the_same_and_on_a_new_association(sqlite_database, modality_port: int, tmp_path: Path) -> None:
    async with running_listener() as lsn:
        image = make_image(tmp_path / "ct.dcm", study_uid=generate_uid())
        res = await run_tool(["storescu", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port), str(image)])
        assert res.code == 0
        stored = str(pydicom.dcmread(image, stop_before_pixels=True).SOPInstanceUID)
        missing = generate_uid()
        refs = [(CTImageStorage, stored), (CTImageStorage, missing), (MRImageStorage, stored)]

        t1 = generate_uid()
        status, reports = await asyncio.to_thread(ask, lsn.port, request(t1, refs), True)
        assert status == 0x0000
        [(event_type, info)] = reports
        assert event_type == 2 and info.TransactionUID == t1
        assert [r.ReferencedSOPInstanceUID for r in info.ReferencedSOPSequence] == [stored]
        assert {(r.ReferencedSOPInstanceUID, r.ReferencedSOPClassUID, int(r.FailureReason))
                for r in info.FailedSOPSequence} == {(missing, CTImageStorage, 0x0112), (stored, MRImageStorage, 0x0119)}

        # The modality hangs up at once: the report comes on a new association to its configured address.
        received: list[tuple[int, Dataset]] = []
        got = threading.Event()

        def on_report(event: evt.Event) -> tuple[int, None]:
            received.append((event.event_type, event.event_information))
            got.set()
            return 0x0000, None

        scu_side = AE(ae_title="MODALITY")
        scu_side.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
        server = scu_side.start_server(("127.0.0.1", modality_port), block=False,
                                       evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        try:
            t2 = generate_uid()
            status, early = await asyncio.to_thread(ask, lsn.port, request(t2, refs[:1]), False)
            assert status == 0x0000 and early == []
            assert await asyncio.to_thread(got.wait, 10)
            [(event_type, info)] = received
            assert event_type == 1 and info.TransactionUID == t2 and "FailedSOPSequence" not in info
        finally:
            server.shutdown()
        for _ in range(50):
            with Session(get_engine()) as s:
                rows = {t: s.get(StorageCommitment, t) for t in (t1, t2)}
            if all(r is not None and r.state == "reported" for r in rows.values()):
                break
            await asyncio.sleep(0.1)
        assert rows[t1].calling_ae == "MODALITY" and len(rows[t1].failed) == 2
        assert rows[t2].state == "reported" and rows[t2].failed == []
