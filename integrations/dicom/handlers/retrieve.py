"""Query/Retrieve C-GET and C-MOVE (R4.3.2): stored files sent as they were received.

Each sub-operation streams the stored file (stored.StoredInstance), so nothing
is decoded; the peer must therefore accept the file's own transfer syntax
(C-GET: the storage contexts the SCU proposed; C-MOVE: we propose each file's
syntax plus Explicit VR Little Endian to the destination).

Statuses (PS3.4 C.4.2.1.5 / C.4.3.1.4, sent by pynetdicom from what we yield):
- 0xFF00 Pending after each sub-operation; 0x0000 when all succeeded;
- 0xB000 Warning when some sub-operations failed (e.g. no context for a file's syntax);
- 0xFE00 Cancel on C-CANCEL;
- 0xA801 Move destination unknown: not in settings.dicom_move_destinations;
- 0xA900 Identifier does not match SOP class: the level's unique key is missing;
- 0xC000 Unable to process: the index could not be read.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import build_context
from pynetdicom.events import Event

from core.db import session_scope
from domain.imaging_tables import ImagingInstance
from integrations.dicom import qr_query
from integrations.dicom.context import ListenerContext
from integrations.dicom.stored import StoredInstance

log = logging.getLogger("radloop.dicom.retrieve")
MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts per association


def _targets(event: Event) -> list[ImagingInstance]:
    with session_scope() as s:
        return qr_query.retrieve_targets(s, event.identifier)


def _sub_operations(event: Event, ctx: ListenerContext, targets: list[ImagingInstance]) -> Iterator[Any]:
    yield len(targets)
    for inst in targets:
        if event.is_cancelled:
            yield 0xFE00, None
            return
        yield 0xFF00, StoredInstance(ctx.store.path(inst.rel_path), inst.sop_class_uid, inst.sop_instance_uid)


def _resolve(event: Event) -> tuple[list[ImagingInstance] | None, int]:
    try:
        return _targets(event), 0
    except ValueError as exc:
        log.warning("retrieve refused: %s", exc)
        return None, 0xA900
    except Exception:
        log.exception("retrieve failed")
        return None, 0xC000


def handle_get(event: Event, ctx: ListenerContext) -> Iterator[Any]:
    targets, status = _resolve(event)
    if targets is None:
        yield 1
        yield status, None
        return
    yield from _sub_operations(event, ctx, targets)


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
    destination = ctx.settings.move_destinations.get(str(event.move_destination).strip())
    if destination is None:
        log.warning("C-MOVE to unknown AE %r", event.move_destination)
        yield None, None  # pynetdicom answers 0xA801 Move destination unknown
        return
    targets, status = _resolve(event)
    if targets is None:
        yield destination[0], destination[1]
        yield 1
        yield status, None
        return
    yield destination[0], destination[1], {"contexts": _contexts(targets)}
    yield from _sub_operations(event, ctx, targets)
