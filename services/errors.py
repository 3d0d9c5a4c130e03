"""Domain errors every edge maps to its own protocol (HTTP status, DICOM status, HL7 ACK).

Workflow validators raise `ApplicationError(type=<one of these names>)`; the
services translate them back so callers never parse Temporal exceptions.
"""
from __future__ import annotations


class LoopError(Exception):
    """Base: a request the loop refused, with a reason a person can read."""

    kind = "invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(LoopError):
    kind = "not_found"


class Forbidden(LoopError):
    kind = "forbidden"


class Conflict(LoopError):
    kind = "conflict"


class Invalid(LoopError):
    kind = "invalid"


BY_TYPE: dict[str, type[LoopError]] = {
    "NotFound": NotFound,
    "Forbidden": Forbidden,
    "Conflict": Conflict,
    "Invalid": Invalid,
}
