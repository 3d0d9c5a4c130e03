"""C-FIND dispatcher: Modality Worklist and Query/Retrieve share one pynetdicom event.

Statuses (PS3.4 C.4.1.1.4 and K.4.1.1.4):
- 0xFF00 Pending, once per match (with the identifier);
- 0x0000 Success when all matches were sent (pynetdicom sends it when the generator ends);
- 0xFE00 Cancel when the SCU sent C-CANCEL;
- 0xA900 Identifier does not match SOP class: an unreadable identifier or bad key value (a malformed date);
- 0xC001 Unable to process: the database failed (logged with the traceback).

Identifiers are encoded here for the context's transfer syntax (responses.encode_identifier,
worklist items from mwl's cache) and handed to pynetdicom as codec.EncodedDataset; big
endian and deflated contexts get pydicom datasets as before.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.events import Event
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from integrations.dicom import codec
from integrations.dicom.context import ListenerContext
from integrations.dicom.handlers import mwl, qr_find
from integrations.dicom.responses import answer, encode_identifier, query_shape, response_charset

log = logging.getLogger("radloop.dicom.find")


def _answers(sop_class: str, query: Dataset, ctx: ListenerContext, transfer_syntax: str) -> list[Dataset]:
    """Every response identifier, shaped the same way for both: requested keys, in the query's charset."""
    charset = response_charset(query)
    syntax = UID(transfer_syntax)
    if codec.installed() and syntax.is_little_endian and not syntax.is_deflated:
        implicit = syntax.is_implicit_VR
        if sop_class == ModalityWorklistInformationFind:
            return list(mwl.encoded_matches(query, ctx.settings.timezone, charset, implicit))
        shape = query_shape(query)
        return [codec.EncodedDataset(encode_identifier(v, shape, charset, implicit, qr_find.ALWAYS_KEYS), implicit)
                for v in qr_find.matches(query, ctx.settings.ae_title)]
    if sop_class == ModalityWorklistInformationFind:
        values, always = mwl.matches(query, ctx.settings.timezone), ()
    else:
        values, always = qr_find.matches(query, ctx.settings.ae_title), qr_find.ALWAYS_KEYS
    return [answer(v, query, charset, always) for v in values]


def handle_find(event: Event, ctx: ListenerContext) -> Iterator[tuple[int, Dataset | None]]:
    sop_class = str(event.request.AffectedSOPClassUID)
    query = Dataset()
    try:
        query = event.identifier
        results = _answers(sop_class, query, ctx, str(event.context.transfer_syntax))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("C-FIND refused: %s", exc)
        ctx.auditor.queried(event.assoc, sop_class, query, None)
        yield 0xA900, None
        return
    except Exception:
        log.exception("C-FIND failed")
        ctx.auditor.queried(event.assoc, sop_class, query, None)
        yield 0xC001, None
        return
    ctx.auditor.queried(event.assoc, sop_class, query, len(results))
    for ds in results:
        if event.is_cancelled:
            yield 0xFE00, None
            return
        yield 0xFF00, ds
