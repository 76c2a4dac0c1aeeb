"""How errors become answers: 404 unknown thing, 409 clash with the current state (or with a
request that stored the same thing at the same moment), 422 bad input naming the field, 503
solver queue full or database unreachable (``api.outage``). Bad input never gives a 500; an
answer never echoes the input.

``ERRORS`` documents them for every operation (OpenAPI), with their bodies' schemas.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError

from api import outage
from api.access_log import NO_ROUTE
from api.answers import ErrorMessage, InputProblems
from api.solving import SolverBusy
from api.state import Conflict, NotFound, NotYours
from pathway.errors import InputError, field_path, safe_locations

log = logging.getLogger("vein2vein.api")

ERRORS = {
    400: {"description": "the body cannot be read (not UTF-8 JSON)", "model": ErrorMessage},
    401: {"description": "no token, or an unknown one", "model": ErrorMessage},
    403: {"description": "the token's role may not do this", "model": ErrorMessage},
    404: {"description": "no such patient, proposal, plan version or capacity change", "model": ErrorMessage},
    409: {
        "description": "clashes with the current state: the message names the resource and day",
        "model": ErrorMessage,
    },
    413: {"description": "the request body is over the size limit (V2V_MAX_BODY_BYTES)", "model": ErrorMessage},
    422: {"description": "bad input: each error names the field and the problem", "model": InputProblems},
    503: {
        "description": "the solver queue is full, or the database is unreachable: try again after Retry-After seconds",
        "model": ErrorMessage,
    },
}


def _message(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"field": exc.field or "body", "problem": exc.problem}]})


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    detail = []
    for error, loc in zip(errors, safe_locations(errors), strict=True):
        message = str(error.get("msg", "invalid"))
        detail.append({"field": field_path(loc), "problem": message.removeprefix("Value error, ")})
    return JSONResponse(status_code=422, content={"detail": detail})  # the input itself is never echoed


async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return _message(404, str(exc))


async def _not_yours(request: Request, exc: NotYours) -> JSONResponse:
    return _message(403, str(exc))


async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
    field = getattr(exc, "field", None)  # a rule refusing a record names the field the page shows it at
    if field:
        return JSONResponse(status_code=409, content={"detail": str(exc), "field": field})
    return _message(409, str(exc))


ACTIVE_NHS_NUMBER = ("uq_patients_active_nhs_number", "patients.nhs_number")  # PostgreSQL's name, SQLite's words


async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
    # two requests raced to store the same thing (an id, an NHS number): the loser is told, without values
    log.info("integrity conflict on %s %s", request.method, getattr(request.scope.get("route"), "path", NO_ROUTE))
    if any(name in str(exc.orig) for name in ACTIVE_NHS_NUMBER):
        return _message(
            409,
            "another referral that is not withdrawn has this NHS number (stored at the same moment); "
            "withdraw one of them first",
        )
    return _message(
        409,
        "this clashes with something stored at the same moment (a duplicate id or NHS number); reload and try again",
    )


async def _busy(request: Request, exc: SolverBusy) -> JSONResponse:
    return _message(503, str(exc), headers={"Retry-After": "5"})


async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
    if not outage.unreachable(exc):
        raise exc  # not an outage: a fault, answered 500 as before
    # logged once per outage by api.outage, never per request
    return _message(503, outage.UNAVAILABLE, headers={"Retry-After": str(outage.RETRY_AFTER_S)})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # a bug, not bad input: the server logs its trace (Starlette re-raises it); the answer says nothing of it
    return _message(500, "an unexpected error; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(NotYours, _not_yours)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(SolverBusy, _busy)
