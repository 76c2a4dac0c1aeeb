"""The service itself: health and who a token belongs to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import state
from api.answers import Health, Me
from api.deps import Anyone, Configured, Db

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(db: Db, settings: Configured) -> dict[str, Any]:
    with db.read() as work:
        version = state.current_version(work.session)
    return {
        "status": "ok",
        "plan_version": version.id if version else None,
        "today": settings.planning_day().isoformat(),
    }


@router.get("/me", response_model=Me)
def me(who: Anyone) -> dict[str, Any]:
    """Who the token belongs to and its role (the pages show each role only its actions)."""
    return {"name": who.name, "role": who.role}
