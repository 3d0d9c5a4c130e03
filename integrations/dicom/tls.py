"""DICOM over TLS (PS3.15 B.1, IHE ATNA secure node) when certificates are configured.

settings.dicom_tls_cert + dicom_tls_key make the listener speak TLS (1.2 or later,
as BCP 195 asks) on its one port; settings.dicom_tls_ca additionally requires
every peer to present a certificate that CA signed (mutual authentication). The
handshake runs when the connection is accepted, bounded by HANDSHAKE_SECONDS, so
a failure is refused before any association and audited (security alert) like a
refused AE title; plain-TCP peers fail the handshake the same way.

Associations RadLoop opens (C-MOVE sub-operations, Storage Commitment reports on
a new association) use TLS to every AE listed in settings.dicom_destination_tls:
`peer_tls_args` gives pynetdicom's `tls_args` for it, verifying the peer's
certificate (chain and name) and presenting our client certificate for mutual TLS.
"""
from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from core.config import Settings

HANDSHAKE_SECONDS = 10.0


def enabled(settings: Settings) -> bool:
    return settings.dicom_tls_cert is not None and settings.dicom_tls_key is not None


def server_context(settings: Settings) -> ssl.SSLContext | None:
    if not enabled(settings):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(settings.dicom_tls_cert), str(settings.dicom_tls_key))
    if settings.dicom_tls_ca is not None:
        ctx.load_verify_locations(cafile=str(settings.dicom_tls_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(settings: Settings) -> ssl.SSLContext | None:
    """For our own probe of the listener: trusts the CA (or, without one, only checks liveness)."""
    if not enabled(settings):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # the probe dials 127.0.0.1; the certificate names the host
    if settings.dicom_tls_ca is not None:
        ctx.load_verify_locations(cafile=str(settings.dicom_tls_ca))
        ctx.load_cert_chain(str(settings.dicom_tls_cert), str(settings.dicom_tls_key))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_tls_args(settings: Settings, ae_title: str, host: str) -> tuple[ssl.SSLContext, str] | None:
    """`tls_args` for an association to `ae_title` at `host`; None when that AE is not configured for TLS.

    Raises OSError / ssl.SSLError when its CA or certificate files cannot be loaded.
    """
    peer = settings.dicom_destination_tls.get(ae_title)
    if peer is None:
        return None
    ca = peer.ca or settings.dicom_tls_ca
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = (peer.cert, peer.key) if peer.cert else (settings.dicom_tls_cert, settings.dicom_tls_key)
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx, peer.server_hostname or host


class GuardedServer(AssociationServer):
    """Shares the port with sibling listener processes (SO_REUSEPORT); completes TLS handshakes on accept.

    `on_refused(peer, reason)` hears about every failed handshake.
    """

    on_refused: Callable[[str, str], Any] | None = None
    reuse_port = False

    def server_bind(self) -> None:
        if self.reuse_port:
            assert self.socket is not None
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def get_request(self) -> Any:
        assert self.socket is not None
        sock, address = self.socket.accept()
        if self.ssl_context is None:
            return sock, address
        before = sock.gettimeout()
        sock.settimeout(HANDSHAKE_SECONDS)
        try:
            wrapped = self.ssl_context.wrap_socket(sock, server_side=True)  # closes `sock` when it fails
        except (OSError, ValueError) as exc:
            if self.on_refused is not None:
                self.on_refused(str(address[0]), f"TLS handshake failed: {exc}")
            raise OSError(f"TLS handshake with {address[0]} failed") from exc
        wrapped.settimeout(before)
        return wrapped, address


class ThreadedGuardedServer(ThreadedAssociationServer, GuardedServer):
    """The same, serving from a background thread (tests, embedding)."""
