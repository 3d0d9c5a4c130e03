"""DICOM over TLS (PS3.15 B.1) with a throw-away CA and DCMTK echoscu / storescu `+tls`."""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydicom.uid import generate_uid
from sqlmodel import Session, select

from core.config import get_settings, reset_settings_cache
from core.db import get_engine
from domain.imaging_tables import ImagingInstance
from domain.security_tables import AuditRecord
from integrations.dicom import probe
from tests.support.dicom_files import make_image
from tests.support.dicom_tools import run_tool, running_listener


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def make_ca(path: Path, cn: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate, Path]:
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _, cert_path = _write(path, key, cert)
    return key, cert, cert_path


def issue(path: Path, cn: str, ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate) -> tuple[Path, Path]:
    """A node certificate (server and client use) for `cn`, signed by the CA; returns (key, cert) paths."""
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _write(path, key, cert)


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    ca_key, ca_cert, ca_path = make_ca(tmp_path / "ca", "RadLoop Test CA")
    server_key, server_cert = issue(tmp_path / "radloop", "radloop", ca_key, ca_cert)
    modality_key, modality_cert = issue(tmp_path / "ct1", "ct1", ca_key, ca_cert)
    rogue_ca_key, rogue_ca_cert, _ = make_ca(tmp_path / "rogue-ca", "Rogue CA")
    rogue_key, rogue_cert = issue(tmp_path / "rogue", "rogue", rogue_ca_key, rogue_ca_cert)
    monkeypatch.setenv("RADLOOP_DICOM_TLS_CERT", str(server_cert))
    monkeypatch.setenv("RADLOOP_DICOM_TLS_KEY", str(server_key))
    monkeypatch.setenv("RADLOOP_DICOM_TLS_CA", str(ca_path))
    reset_settings_cache()
    return {"ca": ca_path, "key": modality_key, "cert": modality_cert, "rogue_key": rogue_key, "rogue_cert": rogue_cert}


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
