"""Error bodies of the HTTP edge: always JSON with a `detail` a person can read.

Domain refusals (`services.errors`) map to HTTP statuses here, once, so routes
raise the domain error and never choose a status code themselves. Validation
errors list every field path and message, without echoing the input back (it
may carry patient data).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from services.errors import Conflict, Forbidden, Invalid, LoopError, NotFound

STATUS_BY_ERROR: dict[type[LoopError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Forbidden: status.HTTP_403_FORBIDDEN,
    Conflict: status.HTTP_409_CONFLICT,
    Invalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


class ErrorBody(BaseModel):
    detail: str


class FieldError(BaseModel):
    """One invalid field: dotted path (`patient.birth_date`), message and error type."""

    field: str
    msg: str
    type: str = "value_error"


class ValidationErrorBody(BaseModel):
    detail: list[FieldError]


class InvalidBody(BaseModel):
    """A 422 of a route that validates its body and also refuses with a reason: one or the other."""

    detail: str | list[FieldError]


# Request locations FastAPI prefixes to a field path; the body itself is implied.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def field_path(loc: Sequence[Any], drop_location: bool = True) -> str:
    parts = list(loc)
    if drop_location and parts and parts[0] in _LOCATIONS and len(parts) > 1:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "__root__"


def field_errors(errors: Iterable[dict[str, Any]], drop_location: bool = True) -> list[FieldError]:
    """Pydantic/FastAPI error dicts -> FieldErrors (the `input` is deliberately left out)."""
    return [
        FieldError(field=field_path(e.get("loc", ()), drop_location), msg=e.get("msg", ""), type=e.get("type", ""))
        for e in errors
    ]


def _loop_error_response(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LoopError)
    code = next((c for t, c in STATUS_BY_ERROR.items() if isinstance(exc, t)), 422)
    return JSONResponse({"detail": exc.reason}, status_code=code)


def _validation_response(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    body = ValidationErrorBody(detail=field_errors(exc.errors()))
    return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


class TemporalUnavailable(Exception):
    """Temporal cannot be reached: the request cannot act on a loop right now (503)."""


def _unavailable_response(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"workflow service unavailable: {exc}"}, status_code=503)


# Temporal down, slow, overloaded, or no worker polling ("no poller seen"): try again later.
_TRANSIENT_RPC = {
    RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.FAILED_PRECONDITION,
}


def _rpc_response(_request: Request, exc: Exception) -> JSONResponse:
    """A Temporal call failed below the domain: 503 when it may pass, else a bad gateway."""
    assert isinstance(exc, RPCError)
    transient = exc.status in _TRANSIENT_RPC
    return JSONResponse({"detail": f"workflow service error: {exc.message}"}, status_code=503 if transient else 502)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoopError, _loop_error_response)
    app.add_exception_handler(RequestValidationError, _validation_response)
    app.add_exception_handler(TemporalUnavailable, _unavailable_response)
    app.add_exception_handler(RPCError, _rpc_response)
