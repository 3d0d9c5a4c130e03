"""DICOM over TLS (PS3.15 B.1) with a throw-away CA (tests/support/pki.py) and DCMTK `+tls` peers.

Inbound: echoscu / storescu `+tls` against the listener. Outbound: C-MOVE sub-operations to a
`storescp +tls` destination, and the Storage Commitment report on a new association to a
requester listening with TLS. DCMTK has no Storage Commitment SCU that receives N-EVENT-REPORT,
so that peer is a pynetdicom AE serving TLS in the test.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from sqlmodel import Session, select

from core.config import get_settings, reset_settings_cache
from core.db import get_engine
from domain.imaging_tables import ImagingInstance, StorageCommitment
from domain.security_tables import AuditRecord
from integrations.dicom import probe
from tests.support.dicom_files import make_image
from tests.support.dicom_tools import DCMTK_ENV, free_port, run_tool, running_listener
from tests.support.pki import TestCA


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("radloop", "radloop", server=True, client=True)  # the listener's, also its probe's
    modality = ca.issue("ct1", "ct1", server=False)
    rogue = TestCA(tmp_path / "rogue-pki", "Rogue CA").issue("rogue", "rogue", server=False)
    monkeypatch.setenv("RADLOOP_DICOM_TLS_CERT", str(server.cert))
    monkeypatch.setenv("RADLOOP_DICOM_TLS_KEY", str(server.key))
    monkeypatch.setenv("RADLOOP_DICOM_TLS_CA", str(ca.pem.cert))
    reset_settings_cache()
    return {"ca": ca.pem.cert, "key": modality.key, "cert": modality.cert, "rogue_key": rogue.key,
            "rogue_cert": rogue.cert}


async def test_tls_mutual_authentication_with_dcmtk(sqlite_database, pki: dict[str, Path], tmp_path: Path) -> None:
    async with running_listener() as lsn:
        port = str(lsn.port)
        tls = ["+tls", str(pki["key"]), str(pki["cert"]), "+cf", str(pki["ca"])]
        echo = await run_tool(["echoscu", *tls, "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port])
        assert echo.code == 0, echo.stderr

        study = generate_uid()
        image = make_image(tmp_path / "ct.dcm", study_uid=study, patient_id="P-TLS")
        stored = await run_tool(["storescu", *tls, "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port, str(image)])
        assert stored.code == 0 and "Store Failed" not in stored.stderr, stored.stderr
        with Session(get_engine()) as s:
            lsn.ctx.index_writer.flush()  # type: ignore[attr-defined]
            assert s.exec(select(ImagingInstance).where(ImagingInstance.study_instance_uid == study)).first() is not None

        # Refused: plain TCP, and a certificate from a CA the listener does not trust.
        plain = await run_tool(["echoscu", "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port])
        assert plain.code != 0
        rogue = await run_tool(["echoscu", "+tls", str(pki["rogue_key"]), str(pki["rogue_cert"]), "+cf", str(pki["ca"]),
                                "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port])
        assert rogue.code != 0
        # The server certificate is checked by the modality too: without the CA it refuses us.
        untrusting = await run_tool(["echoscu", "+tls", str(pki["key"]), str(pki["cert"]),
                                     "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port])
        assert untrusting.code != 0

        # The health probe speaks TLS with the listener's own certificate.
        settings = get_settings().model_copy(update={"dicom_port": lsn.port})
        assert "(TLS)" in await asyncio.to_thread(probe.c_echo, settings, 10.0)

        deadline = time.monotonic() + 20
        while True:
            lsn.ctx.auditor.flush()  # type: ignore[attr-defined]
            with Session(get_engine()) as s:
                alerts = list(s.exec(select(AuditRecord).where(AuditRecord.event_id == "110113")))
            if len(alerts) >= 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert len(alerts) >= 2, [a.detail for a in alerts]  # plain TCP and the rogue certificate, at least
        assert all(a.detail["reason"].startswith("TLS handshake failed") and a.source == "127.0.0.1" for a in alerts)
        assert any("certificate" in a.detail["reason"].lower() for a in alerts)
        # The listener is still serving after the refusals.
        again = await run_tool(["echoscu", *tls, "-aet", "CT1", "-aec", "RADLOOP", "127.0.0.1", port])
        assert again.code == 0, again.stderr


# ---- outbound: associations RadLoop opens --------------------------------------------------------


@pytest.fixture
def outbound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A plain listener whose configured peers DEST, BADCERT and NOTLS are all reached over TLS."""
    ca = TestCA(tmp_path / "pki")
    ours = ca.issue("radloop", "radloop", client=True, server=False)  # presented to the peers
    peer = ca.issue("dest", "dest", server=True)  # SANs localhost and 127.0.0.1
    rogue = TestCA(tmp_path / "rogue-pki", "Rogue CA").issue("dest", "dest", server=True)
    ports = {ae: free_port() for ae in ("DEST", "BADCERT", "NOTLS", "MODALITY", "BROKEN")}
    monkeypatch.setenv("RADLOOP_DICOM_MOVE_DESTINATIONS", ",".join(f"{ae}=127.0.0.1:{p}" for ae, p in ports.items()))
    tls = {"ca": str(ca.pem.cert), "cert": str(ours.cert), "key": str(ours.key)}
    peers = {ae: tls for ae in ports} | {"BROKEN": {**tls, "ca": str(tmp_path / "missing-ca.pem")}}
    monkeypatch.setenv("RADLOOP_DICOM_DESTINATION_TLS", json.dumps(peers))
    reset_settings_cache()
    return {"ca": ca, "peer": peer, "rogue": rogue, "ports": ports}


def _storescp(argv: list[str], ae: str, out: Path, port: int) -> subprocess.Popen[bytes]:
    out.mkdir()
    return subprocess.Popen(["storescp", *argv, "-aet", ae, "-od", str(out), str(port)], env=DCMTK_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def test_c_move_sub_operations_go_over_tls_to_a_dcmtk_storescp(
        sqlite_database, outbound: dict, tmp_path: Path) -> None:
    ca, peer, rogue, ports = outbound["ca"], outbound["peer"], outbound["rogue"], outbound["ports"]
    study = generate_uid()
    images = [make_image(tmp_path / f"{i}.dcm", study_uid=study, patient_id="P-MOVE", instance=i + 1, seed=i)
              for i in range(2)]
    sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in images}
    scps = {
        "DEST": _storescp(["+tls", str(peer.key), str(peer.cert), "+cf", str(ca.pem.cert)],
                          "DEST", tmp_path / "dest", ports["DEST"]),
        # Presents a certificate from a CA we do not trust for DEST-like peers: refused by us.
        "BADCERT": _storescp(["+tls", str(rogue.key), str(rogue.cert), "+cf", str(ca.pem.cert)],
                             "BADCERT", tmp_path / "badcert", ports["BADCERT"]),
        # Configured for TLS but speaking plain TCP: nothing goes out in the clear.
        "NOTLS": _storescp([], "NOTLS", tmp_path / "notls", ports["NOTLS"]),
    }
    try:
        await asyncio.sleep(0.5)  # the storescps bind
        async with running_listener() as lsn:
            stored = await run_tool(["storescu", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port), *map(str, images)])
            assert stored.code == 0, stored.stderr
            lsn.ctx.index_writer.flush()  # type: ignore[attr-defined]

            async def move(dest: str):
                return await run_tool(["movescu", "-S", "-aec", "RADLOOP", "-aem", dest, "-k",
                                       "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
                                       "127.0.0.1", str(lsn.port)])

            moved = await move("DEST")
            assert moved.code == 0 and "Failed" not in moved.stderr, moved.stderr
            got = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in (tmp_path / "dest").iterdir()}
            assert got == sops
            for refused in ("BADCERT", "NOTLS"):
                res = await move(refused)
                assert "movedestinationunknown" in (res.stdout + res.stderr).lower().replace(" ", ""), res.stderr
                assert list((tmp_path / refused.lower()).iterdir()) == []
            broken = await move("BROKEN")  # its CA file is missing: 0xC514 Unable to process, nothing sent
            assert "unabletoprocess" in (broken.stdout + broken.stderr).lower(), broken.stderr
    finally:
        for scp in scps.values():
            scp.terminate()
            scp.wait(5)


def _tls_requester(ca: TestCA, peer_cert: Path, peer_key: Path, port: int,
                   received: list[tuple[int, Dataset, dict]], got: threading.Event):
    """The modality's own listening side, TLS with client certificates required (pynetdicom)."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.pem.cert))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_cert_chain(str(peer_cert), str(peer_key))

    def on_report(event: evt.Event) -> tuple[int, None]:
        client_cert = event.assoc.dul.socket.socket.getpeercert()  # type: ignore[union-attr]
        received.append((event.event_type, event.event_information, client_cert))
        got.set()
        return 0x0000, None

    side = AE(ae_title="MODALITY")
    side.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    return side.start_server(("127.0.0.1", port), block=False, ssl_context=server_ctx,
                             evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])


async def test_commitment_report_on_a_new_association_uses_tls(sqlite_database, outbound: dict, tmp_path: Path) -> None:
    from tests.integrations.dicom.test_dicom_commitment import ask, request

    ca, peer, ports = outbound["ca"], outbound["peer"], outbound["ports"]
    received: list[tuple[int, Dataset, dict]] = []
    got = threading.Event()
    server = _tls_requester(ca, peer.cert, peer.key, ports["MODALITY"], received, got)
    try:
        async with running_listener() as lsn:
            image = make_image(tmp_path / "ct.dcm", study_uid=generate_uid())
            res = await run_tool(["storescu", "-aec", "RADLOOP", "127.0.0.1", str(lsn.port), str(image)])
            assert res.code == 0, res.stderr
            ds = pydicom.dcmread(image, stop_before_pixels=True)
            transaction = generate_uid()
            # The modality hangs up after the N-ACTION response: the report comes on our association, over TLS.
            status, early = await asyncio.to_thread(
                ask, lsn.port, request(transaction, [(str(ds.SOPClassUID), str(ds.SOPInstanceUID))]), False)
            assert status == 0x0000 and early == []
            assert await asyncio.to_thread(got.wait, 15)
            [(event_type, info, client_cert)] = received
            assert event_type == 1 and info.TransactionUID == transaction
            assert dict(x[0] for x in client_cert["subject"])["commonName"] == "radloop"  # our client certificate
            for _ in range(50):
                with Session(get_engine()) as s:
                    row = s.get(StorageCommitment, transaction)
                if row is not None and row.state == "reported":
                    break
                await asyncio.sleep(0.1)
            assert row is not None and row.state == "reported"
    finally:
        server.shutdown()


async def test_commitment_report_is_not_sent_in_the_clear_to_a_tls_requester(
        sqlite_database, outbound: dict, tmp_path: Path) -> None:
    """The requester listens without TLS although configured for it: the report fails, recorded as such."""
    from tests.integrations.dicom.test_dicom_commitment import ask, request

    got = threading.Event()
    plain = AE(ae_title="MODALITY")
    plain.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    server = plain.start_server(("127.0.0.1", outbound["ports"]["MODALITY"]), block=False,
                                evt_handlers=[(evt.EVT_N_EVENT_REPORT, lambda e: (got.set(), (0x0000, None))[1])])
    try:
        async with running_listener() as lsn:
            transaction = generate_uid()
            status, _ = await asyncio.to_thread(
                ask, lsn.port, request(transaction, [("1.2.840.10008.5.1.4.1.1.2", generate_uid())]), False)
            assert status == 0x0000
            for _ in range(100):
                with Session(get_engine()) as s:
                    row = s.get(StorageCommitment, transaction)
                if row is not None and row.state != "pending":
                    break
                await asyncio.sleep(0.1)
            assert row is not None and row.state == "report_failed"
            assert not got.is_set()
    finally:
        server.shutdown()
