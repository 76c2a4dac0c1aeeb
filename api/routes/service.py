"""The service itself: health and who a token belongs to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from api import outage, views
from api.answers import Health, HealthDown, Me
from api.deps import Anyone, Configured, Db

router = APIRouter(tags=["service"])

DOWN = {503: {"model": HealthDown, "description": "the database is unreachable; ask again after Retry-After seconds"}}


@router.get("/health", response_model=Health, responses=DOWN)
def health(db: Db, settings: Configured) -> dict[str, Any] | JSONResponse:
    """Up (200), or what is down (503)."""
    try:
        with db.read() as work:
            return views.health(work.session, settings)
    except DBAPIError as exc:
        if not outage.unreachable(exc):
            raise
    down = HealthDown(status="unavailable", database="unreachable", detail=outage.UNAVAILABLE)
    return JSONResponse(down.model_dump(), status_code=503, headers={"Retry-After": str(outage.RETRY_AFTER_S)})


@router.get("/me", response_model=Me)
def me(who: Anyone) -> dict[str, Any]:
    """Who the token belongs to and its role (the pages show each role only its actions)."""
    return {"name": who.name, "role": who.role}
