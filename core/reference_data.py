"""Reference data every center starts from, in production too: the critical-value dictionary,
the procedure catalogue and the care policy (queue priority rules).

Only written when absent: once a center edits its dictionary or catalogue, its rows are its own.
"""
from __future__ import annotations

from sqlmodel import Session, select

from domain.critical_dictionary import SEED_ITEMS
from domain.critical_tables import CriticalDictionaryVersion
from services.care_policy import seed as seed_care_policy
from services.procedure_catalogue import seed_catalogue


def seed_reference_data(session: Session) -> None:
    if session.exec(select(CriticalDictionaryVersion)).first() is None:
        session.add(CriticalDictionaryVersion(
            version=1, created_by="system", note="seed: common radiology critical values",
            items=[i.model_dump(mode="json") for i in SEED_ITEMS],
        ))
        session.flush()
    seed_catalogue(session)
    seed_care_policy(session)
