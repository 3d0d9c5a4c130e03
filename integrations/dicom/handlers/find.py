"""C-FIND dispatcher: Modality Worklist and Query/Retrieve share one pynetdicom event.

Statuses (PS3.4 C.4.1.1.4 and K.4.1.1.4):
- 0xFF00 Pending, once per match (with the identifier);
- 0x0000 Success when all matches were sent (pynetdicom sends it when the generator ends);
- 0xFE00 Cancel when the SCU sent C-CANCEL;
- 0xA900 Identifier does not match SOP class: an unreadable identifier or bad key value (a malformed date);
- 0xC001 Unable to process: the database failed (logged with the traceback).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom.events import Event
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from integrations.dicom.context import ListenerContext
from integrations.dicom.handlers import mwl, qr_find

log = logging.getLogger("radloop.dicom.find")


def _matches(sop_class: str, query: Dataset, ctx: ListenerContext) -> Iterator[Dataset]:
    if sop_class == ModalityWorklistInformationFind:
        return mwl.matches(query, ctx.settings.timezone)
    return qr_find.matches(sop_class, query, ctx)


def handle_find(event: Event, ctx: ListenerContext) -> Iterator[tuple[int, Dataset | None]]:
    try:
        query = event.identifier
        results = list(_matches(event.request.AffectedSOPClassUID, query, ctx))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("C-FIND refused: %s", exc)
        yield 0xA900, None
        return
    except Exception:
        log.exception("C-FIND failed")
        yield 0xC001, None
        return
    for ds in results:
        if event.is_cancelled:
            yield 0xFE00, None
            return
        yield 0xFF00, ds
