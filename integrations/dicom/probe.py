"""C-ECHO the listener as the API's health check does: its own AE title, TLS when configured."""
from __future__ import annotations

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from core.config import Settings
from integrations.dicom import tls
from integrations.dicom.access import PROBE_AE_TITLE


class ListenerDown(Exception):
    """The listener did not answer the C-ECHO; the message says how it failed."""


def c_echo(settings: Settings, timeout: float = 2.0, host: str = "127.0.0.1") -> str:
    """A description of the answer, or ListenerDown."""
    ae = AE(ae_title=PROBE_AE_TITLE)
    ae.add_requested_context(Verification)
    for attr in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
        setattr(ae, attr, timeout)
    ctx = tls.client_context(settings)
    called, port = settings.ae_title, settings.dicom_port
    assoc = ae.associate(host, port, ae_title=called, tls_args=(ctx, None) if ctx else None)  # type: ignore[arg-type]
    if not assoc.is_established:
        raise ListenerDown(f"association to {called}@{host}:{port} not established")
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or status.Status != 0x0000:
        raise ListenerDown(f"C-ECHO failed: {status.Status if status else 'no response'}")
    return f"C-ECHO {called}@{host}:{port}" + (" (TLS)" if ctx else "")
