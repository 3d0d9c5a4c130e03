"""Query/Retrieve C-GET and C-MOVE (R4.3.2): stored files sent as they were received.

Each sub-operation streams the stored file (stored.StoredInstance), so nothing
is decoded; the peer must therefore accept the file's own transfer syntax
(C-GET: the storage contexts the SCU proposed; C-MOVE: we propose each file's
syntax plus Explicit VR Little Endian to the destination). A destination listed in
settings.dicom_destination_tls is reached over TLS only (tls.peer_tls_args).

Statuses (PS3.4 C.4.2.1.5 / C.4.3.1.4, sent by pynetdicom from what we yield):
- 0xFF00 Pending after each sub-operation; 0x0000 when all succeeded;
- 0xB000 Warning when some sub-operations failed (e.g. no context for a file's syntax);
- 0xFE00 Cancel on C-CANCEL;
- 0xA801 Move destination unknown: not in settings.dicom_move_destinations, or the
  association to it failed (for a TLS destination also a failed handshake);
- 0xC514 Unable to process: the destination's TLS files (dicom_destination_tls) cannot be loaded;
- 0xA900 Identifier does not match SOP class: the level's unique key is missing;
- 0xC000 Unable to process: the index could not be read.

Every instance handed out counts toward the association's audit record
(audit.py: 110104 DICOM Instances Transferred, action R, per study and destination).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import build_context
from pynetdicom.events import Event
from sqlmodel import col, select

from core.db import session_scope
from domain.imaging_tables import ImagingInstance, ImagingStudy
from integrations.dicom import qr_query, tls
from integrations.dicom.context import ListenerContext
from integrations.dicom.stored import StoredInstance

log = logging.getLogger("radloop.dicom.retrieve")
MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts per association
Found = tuple[list[ImagingInstance], dict[str, ImagingStudy]]  # instances to send, their studies


def _targets(event: Event) -> Found:
    with session_scope() as s:
        targets = qr_query.retrieve_targets(s, event.identifier)
        uids = {t.study_instance_uid for t in targets}
        studies = {st.study_instance_uid: st for st in s.exec(select(ImagingStudy).where(
            col(ImagingStudy.study_instance_uid).in_(uids)))} if uids else {}
        return targets, studies


def _sub_operations(event: Event, ctx: ListenerContext, found: Found, destination: str = "") -> Iterator[Any]:
    targets, studies = found
    yield len(targets)
    for inst in targets:
        if event.is_cancelled:
            yield 0xFE00, None
            return
        study = studies.get(inst.study_instance_uid)
        ctx.auditor.transferred(event.assoc, "sent", inst.study_instance_uid, inst.sop_class_uid, True,
                                study.patient_id if study else "", study.accession_number if study else "",
                                destination)
        yield 0xFF00, StoredInstance(ctx.store.path(inst.rel_path), inst.sop_class_uid, inst.sop_instance_uid)


def _resolve(event: Event) -> tuple[Found | None, int]:
    try:
        return _targets(event), 0
    except ValueError as exc:
        log.warning("retrieve refused: %s", exc)
        return None, 0xA900
    except Exception:
        log.exception("retrieve failed")
        return None, 0xC000


def handle_get(event: Event, ctx: ListenerContext) -> Iterator[Any]:
    found, status = _resolve(event)
    if found is None:
        yield 1
        yield status, None
        return
    yield from _sub_operations(event, ctx, found)


def _contexts(targets: list[ImagingInstance]) -> list[Any]:
    pairs: dict[str, set[str]] = {}
    for inst in targets:
        pairs.setdefault(inst.sop_class_uid, set()).add(inst.transfer_syntax_uid)
    contexts = []
    for sop_class, syntaxes in pairs.items():
        for ts in sorted(syntaxes):
            contexts.append(build_context(sop_class, [ts] if ts == ExplicitVRLittleEndian else [ts, ExplicitVRLittleEndian]))
    return contexts[:MAX_CONTEXTS]


def handle_move(event: Event, ctx: ListenerContext) -> Iterator[Any]:
    move_ae = str(event.move_destination).strip()
    destination = ctx.settings.move_destinations.get(move_ae)
    if destination is None:
        log.warning("C-MOVE to unknown AE %r", event.move_destination)
        yield None, None  # pynetdicom answers 0xA801 Move destination unknown
        return
    try:
        tls_args = tls.peer_tls_args(ctx.settings, move_ae, destination[0])
    except (OSError, ValueError) as exc:
        log.error("C-MOVE to %s: its TLS configuration cannot be loaded: %s", move_ae, exc)
        raise
    secure = {"tls_args": tls_args} if tls_args else {}
    found, status = _resolve(event)
    if found is None:
        yield destination[0], destination[1], secure
        yield 1
        yield status, None
        return
    yield destination[0], destination[1], {"contexts": _contexts(found[0]), **secure}
    yield from _sub_operations(event, ctx, found, move_ae)
