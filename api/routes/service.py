"""The service itself: health and who a token belongs to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import views
from api.answers import Health, Me
from api.deps import Anyone, Configured, Db

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(db: Db, settings: Configured) -> dict[str, Any]:
    with db.read() as work:
        return views.health(work.session, settings)


@router.get("/me", response_model=Me)
def me(who: Anyone) -> dict[str, Any]:
    """Who the token belongs to and its role (the pages show each role only its actions)."""
    return {"name": who.name, "role": who.role}
