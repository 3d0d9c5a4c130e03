"""Which SOP classes the listener serves and which handler answers each (one place to look)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynetdicom import evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    StorageCommitmentPushModel,
    Verification,
)

from integrations.dicom.context import ListenerContext
from integrations.dicom.handlers.commitment import handle_n_action
from integrations.dicom.handlers.echo import handle_echo
from integrations.dicom.handlers.find import handle_find
from integrations.dicom.handlers.mpps import handle_n_create, handle_n_set
from integrations.dicom.handlers.retrieve import handle_get, handle_move
from integrations.dicom.handlers.store import handle_store


@dataclass(frozen=True)
class Service:
    name: str
    sop_classes: tuple[str, ...]
    bind: Callable[[ListenerContext], list[Any]]
    compressed: bool = False  # accept compressed transfer syntaxes (storage only)
    storage_role: bool = False  # SCP/SCU role selection for C-GET sub-operations

    def contexts(self) -> list[tuple[str, bool]]:
        return [(uid, self.storage_role) for uid in self.sop_classes]

    def handlers(self, ctx: ListenerContext) -> list[Any]:
        return self.bind(ctx)


FIND_CLASSES: tuple[str, ...] = (
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
# pynetdicom's list of storage SOP classes (images, SR, PDF, presentation states, ...).
STORAGE_CLASSES: tuple[str, ...] = tuple(str(cx.abstract_syntax) for cx in StoragePresentationContexts)

SERVICES: list[Service] = [
    Service("verification", (Verification,), lambda ctx: [(evt.EVT_C_ECHO, handle_echo)]),
    Service("find", FIND_CLASSES, lambda ctx: [(evt.EVT_C_FIND, handle_find, [ctx])]),
    Service("mpps", (ModalityPerformedProcedureStep,),
            lambda ctx: [(evt.EVT_N_CREATE, handle_n_create, [ctx]), (evt.EVT_N_SET, handle_n_set, [ctx])]),
    Service("get", (PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet),
            lambda ctx: [(evt.EVT_C_GET, handle_get, [ctx])]),
    Service("move", (PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove),
            lambda ctx: [(evt.EVT_C_MOVE, handle_move, [ctx])]),
    Service("commitment", (StorageCommitmentPushModel,), lambda ctx: [(evt.EVT_N_ACTION, handle_n_action, [ctx])]),
    Service("storage", STORAGE_CLASSES, lambda ctx: [(evt.EVT_C_STORE, handle_store, [ctx])],
            compressed=True, storage_role=True),
]
