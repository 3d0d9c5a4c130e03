"""TLS for the HTTP API and the HL7 MLLP listener when certificates are configured (R10.2.2).

Each edge has three settings: `<edge>_tls_cert` and `<edge>_tls_key` (PEM) turn TLS
on; `<edge>_tls_ca` additionally requires every client to present a certificate
that CA signed (mutual TLS: how a HIS or a modality proves who it is). TLS 1.2 is
the floor (BCP 195). Without a certificate the edge stays plain, as in development.
DICOM has its own (integrations/dicom/tls.py), built the same way.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from core.config import Settings

HANDSHAKE_SECONDS = 10.0


def server_context(cert: Path | None, key: Path | None, ca: Path | None = None) -> ssl.SSLContext | None:
    if cert is None or key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if ca is not None:
        ctx.load_verify_locations(cafile=str(ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """What a peer uses to reach us: trusts `ca`, and shows its own certificate when given one."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


# ---- the API (uvicorn) -----------------------------------------------------------------------


def api_enabled(settings: Settings) -> bool:
    return settings.api_tls_cert is not None and settings.api_tls_key is not None


def api_scheme(settings: Settings) -> str:
    return "https" if api_enabled(settings) else "http"


def uvicorn_ssl(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` (empty when TLS is off)."""
    if not api_enabled(settings):
        return {}
    out: dict[str, Any] = {"ssl_certfile": str(settings.api_tls_cert), "ssl_keyfile": str(settings.api_tls_key)}
    if settings.api_tls_ca is not None:
        out |= {"ssl_ca_certs": str(settings.api_tls_ca), "ssl_cert_reqs": int(ssl.CERT_REQUIRED)}
    return out


def uvicorn_args(settings: Settings) -> list[str]:
    """The same as command-line options, for the launcher's `uvicorn` process."""
    flags = {"ssl_certfile": "--ssl-certfile", "ssl_keyfile": "--ssl-keyfile", "ssl_ca_certs": "--ssl-ca-certs",
             "ssl_cert_reqs": "--ssl-cert-reqs"}
    return [arg for k, v in uvicorn_ssl(settings).items() for arg in (flags[k], str(v))]


# ---- HL7 MLLP ----------------------------------------------------------------------------------


def hl7_server_context(settings: Settings) -> ssl.SSLContext | None:
    return server_context(settings.hl7_tls_cert, settings.hl7_tls_key, settings.hl7_tls_ca)
