"""Who may associate (R10.2.3 applied to DICOM nodes): the calling-AE allow-list.

With settings.dicom_allowed_calling_aes set, pynetdicom answers any other calling
AE title with A-ASSOCIATE-RJ: rejected-permanent, source "DICOM UL service-user",
reason 3 "calling-AE-title-not-recognized" (PS3.8 9.3.4), before any DIMSE. Every
refusal becomes a security-alert audit record. The API's health probe (probe.py)
is admitted under its own AE title, but only from a loopback address: from
anywhere else that title is aborted right after acceptance and audited alike.
An AE title is a claim, not a proof; with TLS and a CA configured (tls.py) the
peer must also hold a certificate the CA signed.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.events import Event

from core.config import Settings
from integrations.dicom.audit import DicomAuditor, peer_of

PROBE_AE_TITLE = "RADLOOP-HEALTH"


def admitted_titles(settings: Settings) -> list[str]:
    """The AE titles pynetdicom admits; empty admits every calling AE (development default)."""
    allowed = settings.allowed_calling_aes
    return [*allowed, PROBE_AE_TITLE] if allowed else []


def apply(ae: AE, settings: Settings) -> None:
    ae.require_calling_aet = admitted_titles(settings)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _why_rejected(event: Event, settings: Settings) -> str:
    calling = str(event.assoc.requestor.ae_title).strip()
    allowed = admitted_titles(settings)
    if allowed and calling not in allowed:
        return "calling AE title not recognized"
    return "rejected by the listener (association limit or negotiation)"


def on_rejected(event: Event, settings: Settings, auditor: DicomAuditor) -> None:
    assoc = event.assoc
    auditor.refused(str(assoc.requestor.ae_title).strip(), str(assoc.acceptor.ae_title).strip(), peer_of(assoc),
                    _why_rejected(event, settings))


def on_established(event: Event, settings: Settings, auditor: DicomAuditor) -> None:
    """The probe's title is admitted from loopback only; from elsewhere it is aborted and audited."""
    assoc = event.assoc
    calling = str(assoc.requestor.ae_title).strip()
    if (calling == PROBE_AE_TITLE and settings.allowed_calling_aes and calling not in settings.allowed_calling_aes
            and not _is_loopback(peer_of(assoc))):
        auditor.refused(calling, str(assoc.acceptor.ae_title).strip(), peer_of(assoc),
                        "health-probe AE title from a non-loopback address")
        assoc.abort()


def handlers(settings: Settings, auditor: DicomAuditor) -> list[Any]:
    return [(evt.EVT_REJECTED, on_rejected, [settings, auditor]),
            (evt.EVT_ESTABLISHED, on_established, [settings, auditor])]
