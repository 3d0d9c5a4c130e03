"""TLS on the API and on MLLP when certificates are configured (R10.2.2), with a CA made in the test.

The API runs in uvicorn with exactly the options the launcher derives from the settings; the
HL7 listener is the real `python -m integrations.hl7.listener` process answering an ADT over TLS."""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from core.config import REPO_ROOT, Settings, get_settings, reset_settings_cache
from core.launcher import app_commands
from integrations.hl7.mllp import END_BLOCK, START_BLOCK
from security import tls
from tests.integrations.hl7.messages import ack_fields, msh, pid
from tests.support.pki import TestCA


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "pki")


def test_settings_without_certificates_stay_plain() -> None:
    s = Settings()
    assert tls.uvicorn_ssl(s) == {} and tls.uvicorn_args(s) == [] and tls.api_scheme(s) == "http"
    assert tls.hl7_server_context(s) is None


def test_the_launcher_starts_the_api_with_tls_options(ca: TestCA) -> None:
    server = ca.issue("api", "localhost", server=True)
    s = Settings(api_tls_cert=server.cert, api_tls_key=server.key, api_tls_ca=ca.pem.cert)
    argv = app_commands(s)["api"]
    assert argv[argv.index("--ssl-certfile") + 1] == str(server.cert)
    assert argv[argv.index("--ssl-keyfile") + 1] == str(server.key)
    assert argv[argv.index("--ssl-ca-certs") + 1] == str(ca.pem.cert)
    assert argv[argv.index("--ssl-cert-reqs") + 1] == str(int(ssl.CERT_REQUIRED))


@pytest.fixture
def https_api(ca: TestCA, sqlite_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The app in uvicorn on a free port, TLS options from the settings (mutual TLS: the CA is set)."""
    server = ca.issue("api", "localhost", server=True)
    monkeypatch.setenv("RADLOOP_API_TLS_CERT", str(server.cert))
    monkeypatch.setenv("RADLOOP_API_TLS_KEY", str(server.key))
    monkeypatch.setenv("RADLOOP_API_TLS_CA", str(ca.pem.cert))
    monkeypatch.setenv("RADLOOP_TEMPORAL_ADDRESS", f"127.0.0.1:{_free_port()}")
    reset_settings_cache()
    from api.main import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning",
                                        lifespan="off", **tls.uvicorn_ssl(get_settings())))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield port
    srv.should_exit = True
    thread.join(timeout=15)


def test_api_over_mutual_tls(https_api: int, ca: TestCA) -> None:
    url = f"https://127.0.0.1:{https_api}/api/v1/tasks"
    client = ca.issue("clinic", "ward-terminal-7", server=False)
    with httpx.Client(verify=tls.client_context(ca.pem.cert, client.cert, client.key), timeout=20) as c:
        r = c.get(url, headers={"Authorization": "Bearer dev-registrar"})
    assert r.status_code == 200 and r.json()["total"] == 0  # through TLS, to the route, authenticated
    with pytest.raises(httpx.HTTPError):  # no client certificate: the handshake is refused
        with httpx.Client(verify=tls.client_context(ca.pem.cert), timeout=20) as c:
            c.get(url)
    with pytest.raises(httpx.HTTPError):  # a server certificate from another CA is not trusted
        other = TestCA(ca.folder / "other")
        with httpx.Client(verify=tls.client_context(other.pem.cert, client.cert, client.key), timeout=20) as c:
            c.get(url)
    with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer from a TLS port
        with httpx.Client(timeout=20) as c:
            c.get(f"http://127.0.0.1:{https_api}/health")


@pytest.fixture
def tls_hl7_listener(ca: TestCA, sqlite_database: str, tmp_path: Path) -> Iterator[int]:
    server = ca.issue("hl7", "localhost", server=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADLOOP_")}
    env.update(RADLOOP_DATABASE_URL=sqlite_database, RADLOOP_DATA_DIR=str(tmp_path), RADLOOP_HL7_PORT=str(port),
               RADLOOP_TEMPORAL_ADDRESS=f"127.0.0.1:{_free_port()}", RADLOOP_HL7_TLS_CERT=str(server.cert),
               RADLOOP_HL7_TLS_KEY=str(server.key), RADLOOP_HL7_TLS_CA=str(ca.pem.cert), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "integrations.hl7.listener"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HL7 listener never listened"
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _exchange(port: int, ctx: ssl.SSLContext | None, message: str) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 20)
    try:
        writer.write(START_BLOCK + message.encode("utf-8") + END_BLOCK)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(END_BLOCK), 30)
    finally:
        writer.close()


async def test_mllp_over_mutual_tls(tls_hl7_listener: int, ca: TestCA) -> None:
    his = ca.issue("his", "HIS", server=False)
    adt = "\r".join([msh("ADT^A04^ADT_A01"), "EVN|A04|20261127120000", pid("TLS-0001")]) + "\r"
    ack = await _exchange(tls_hl7_listener, tls.client_context(ca.pem.cert, his.cert, his.key), adt)
    assert ack_fields(ack)["MSA"][1] == "AA", ack
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError)):
        await _exchange(tls_hl7_listener, tls.client_context(ca.pem.cert), adt)  # no client certificate
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError)):
        await _exchange(tls_hl7_listener, None, adt)  # plain MLLP on a TLS port: never answered
