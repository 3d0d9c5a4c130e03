"""Is this procedure one the center performs? One answer for REST and HL7 order intake.

A code missing from the catalogue (or retired) would start a loop nobody can
schedule or report, so the order is refused with the field and the reason; a
modality other than the catalogue's for that code is refused the same way.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlmodel import Session, select

from domain.orders import ProcedureIn
from domain.procedure_tables import Procedure
from domain.procedures import SEED_PROCEDURES
from services.errors import Invalid


class ProcedureRefused(Invalid):
    """The order names a procedure the center does not perform; `field` is the OrderIn path."""

    def __init__(self, field: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.field = field


def check_procedure(session: Session, procedure: ProcedureIn) -> None:
    """Raise ProcedureRefused unless the code is active in the catalogue with this modality."""
    row = session.get(Procedure, procedure.code)
    if row is None or not row.active:
        state = "retired" if row is not None else "not in the procedure catalogue"
        raise ProcedureRefused(("procedure", "code"), f"unknown procedure code {procedure.code!r}: {state}")
    if row.modality != procedure.modality:
        raise ProcedureRefused(("procedure", "modality"),
                               f"procedure {row.code} is performed on {row.modality}, not {procedure.modality}")


def check_procedure_with(sessions: Callable[[], AbstractContextManager[Session]], procedure: ProcedureIn) -> None:
    with sessions() as s:
        check_procedure(s, procedure)


def seed_catalogue(session: Session) -> int:
    """Add the seed codes this database does not have yet (a center's own edits are kept)."""
    have = set(session.exec(select(Procedure.code)).all())
    added = [Procedure(**p.model_dump()) for p in SEED_PROCEDURES if p.code not in have]
    session.add_all(added)
    session.flush()
    return len(added)
