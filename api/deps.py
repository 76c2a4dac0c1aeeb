"""The routes' dependencies, as ``Annotated`` types: the runtime (settings, database, solver
pool), the database that hands out units of work, and the actor of each role.

None of them yields: a transaction is opened and committed by the use case the route calls
(since FastAPI 0.118 a ``yield`` dependency's cleanup runs after the answer is sent).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, WithJsonSchema

from api.audit import Actor
from api.auth import actor_for
from api.runtime import Runtime
from api.settings import Settings
from api.unit_of_work import Database
from pathway.cohort import PATIENT_ID_PATTERN, PATIENT_ID_SCHEMA, check_pseudonymous


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


Running = Annotated[Runtime, Depends(runtime)]


def database(running: Running) -> Database:
    return running.database


def settings(running: Running) -> Settings:
    return running.settings


Db = Annotated[Database, Depends(database)]
"""Where the route's units of work come from: ``with db.read() as work: ...``."""
Configured = Annotated[Settings, Depends(settings)]

bearer = HTTPBearer(auto_error=False)


def actor(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)], db: Db) -> Actor:
    """The token's holder (401 without a token, or with an unknown or revoked one)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    with db.read() as work:
        found = actor_for(work.session, credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return found


def role(*allowed: str):
    """The actor, if their role is one of ``allowed`` or admin (403 otherwise)."""

    def check(who: Annotated[Actor, Depends(actor)]) -> Actor:
        if who.role != "admin" and who.role not in allowed:
            raise HTTPException(403, f"role {who.role} may not do this (needs {' or '.join(allowed) or 'admin'})")
        return who

    return check


Anyone = Annotated[Actor, Depends(role("coordinator", "lab_manager"))]
Coordinator = Annotated[Actor, Depends(role("coordinator"))]
LabManager = Annotated[Actor, Depends(role("lab_manager"))]
Planner = Annotated[Actor, Depends(role("coordinator", "lab_manager"))]
Admin = Annotated[Actor, Depends(role())]

# path parameters several resources share
PatientId = Annotated[
    str,
    Path(pattern=PATIENT_ID_PATTERN),
    AfterValidator(check_pseudonymous),
    WithJsonSchema(PATIENT_ID_SCHEMA),
]
ProposalId = Annotated[str, Path(pattern="^[0-9a-f]{32}$")]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
