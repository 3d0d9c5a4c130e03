"""DICOM traffic in the central audit trail (R10.5, R7.1.5), with DICOM PS3.15 A.5 event IDs.

- 110104 DICOM Instances Transferred: action C for instances received (C-STORE),
  R for instances sent (C-GET / C-MOVE sub-operations); one record per study per
  association, with counts, SOP classes and the peer, not one per image.
- 110112 Query: action E, one per C-FIND (worklist or Query/Retrieve), with the
  identifying keys asked (IDs and UIDs; names are free text and are left out).
- 110113 Security Alert, type 110126 Node Authentication: an association refused
  (calling AE not allowed, TLS handshake failed).

The "who" of a DICOM record is the calling AE title (username) at the peer's
address (source). Records are written by one background thread, so no DIMSE
response waits on the audit store; transfers are gathered per association and
queued when its connection closes. The trail spools to disk when the database
refuses a record; `flush()` drains the queue at shutdown.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydicom.dataset import Dataset
from pynetdicom.association import Association

from security.audit import AuditEvent
from security.audit_writer import BackgroundAuditWriter


TRANSFERRED, QUERY, SECURITY_ALERT = "110104", "110112", "110113"
NODE_AUTHENTICATION = "110126"
# Query keys whose values identify what was looked for without free-text patient data.
QUERY_ID_KEYS = ("PatientID", "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                 "Modality", "StudyDate", "QueryRetrieveLevel")


@dataclass
class _StudyTally:
    patient_id: str = ""
    accession: str = ""
    ok: int = 0
    failed: int = 0
    sop_classes: set[str] = field(default_factory=set)


@dataclass
class _Tally:
    """What one association moved, per (direction, study)."""

    calling_ae: str
    called_ae: str
    peer: str
    studies: dict[tuple[str, str, str], _StudyTally] = field(default_factory=dict)


def peer_of(assoc: Association) -> str:
    return str(assoc.requestor.address or "")


def _ae(title: Any) -> str:
    return str(title or "").strip()


class DicomAuditor:
    """Gathers an association's transfers and writes audit records off the DIMSE threads."""

    def __init__(self, record: Callable[[AuditEvent], Any]) -> None:
        self._tallies: dict[int, _Tally] = {}
        self._lock = threading.Lock()
        self._writer = BackgroundAuditWriter(record, "dicom-audit")

    # ---- what handlers report ------------------------------------------------------------
    def _tally(self, assoc: Association) -> _Tally:
        key = id(assoc)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally(
                    _ae(assoc.requestor.ae_title), _ae(assoc.acceptor.ae_title), peer_of(assoc))
            return tally

    def transferred(self, assoc: Association, direction: Literal["received", "sent"], study_uid: str,
                    sop_class: str, ok: bool, patient_id: str = "", accession: str = "", destination: str = "") -> None:
        """One instance received (C-STORE) or sent (C-GET/C-MOVE sub-operation)."""
        tally = self._tally(assoc)
        with self._lock:
            t = tally.studies.setdefault((direction, study_uid, destination), _StudyTally(patient_id, accession))
            t.ok += ok
            t.failed += not ok
            if sop_class:
                t.sop_classes.add(sop_class)

    def queried(self, assoc: Association, sop_class: str, query: Dataset, matches: int | None) -> None:
        keys: dict[str, str] = {}
        for keyword in QUERY_ID_KEYS:
            try:
                value = query.get(keyword)
            except Exception:  # noqa: BLE001 - a malformed identifier is audited with the keys that read
                continue
            if value not in (None, ""):
                keys[keyword] = str(value)[:128]
        self._writer.submit(AuditEvent(
            username=_ae(assoc.requestor.ae_title), source=peer_of(assoc), event_type="dicom_query",
            event_id=QUERY, action="E", object_type="sop_class", object_id=sop_class,
            outcome="success" if matches is not None else "failure",
            detail={"calling_ae": _ae(assoc.requestor.ae_title), "called_ae": _ae(assoc.acceptor.ae_title),
                    "keys": keys, "matches": matches if matches is not None else 0}))

    def refused(self, calling_ae: str, called_ae: str, peer: str, reason: str) -> None:
        """An association or connection refused (security alert: node authentication)."""
        self._writer.submit(AuditEvent(
            username=calling_ae or None, source=peer, event_type="dicom_association_refused",
            event_id=SECURITY_ALERT, action="E", object_type="ae_title", object_id=called_ae or None,
            outcome="failure",
            detail={"alert_type": NODE_AUTHENTICATION, "calling_ae": calling_ae, "called_ae": called_ae,
                    "reason": reason}))

    def closed(self, assoc: Association) -> None:
        """The association ended: queue its transfer records."""
        with self._lock:
            tally = self._tallies.pop(id(assoc), None)
        if tally is None:
            return
        for (direction, study_uid, destination), t in tally.studies.items():
            detail: dict[str, Any] = {
                "direction": direction, "calling_ae": tally.calling_ae, "called_ae": tally.called_ae,
                "instances": t.ok, "failed": t.failed, "sop_classes": sorted(t.sop_classes),
                "patient_id": t.patient_id, "accession_number": t.accession}
            if destination:
                detail["destination"] = destination
            self._writer.submit(AuditEvent(
                username=tally.calling_ae, source=tally.peer, event_type="dicom_instances_transferred",
                event_id=TRANSFERRED, action="C" if direction == "received" else "R",
                object_type="study", object_id=study_uid,
                outcome="success" if t.failed == 0 else "failure", detail=detail))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written (tests, shutdown); False on timeout."""
        return self._writer.flush(timeout)
