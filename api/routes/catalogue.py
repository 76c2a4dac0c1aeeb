"""The pathway catalogue and the site: read by everyone, replaced by an admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api import services, state
from api.answers import CatalogueVersionStored, CatalogueView
from api.deps import Admin, Anyone, Configured, Db

router = APIRouter(prefix="/catalogue", tags=["catalogue"])


@router.get("", response_model=CatalogueView)
def get_catalogue(who: Anyone, db: Db) -> dict[str, Any]:
    with db.read() as work:
        return {
            "pathways": state.catalogue(work.session, variants=False).model_dump(mode="json"),
            "site": state.site(work.session).model_dump(mode="json"),
        }


@router.put("/{kind}", response_model=CatalogueVersionStored)
def put_catalogue(
    kind: Annotated[str, Path(pattern="^(pathways|site)$")],
    body: dict[str, Any],
    who: Admin,
    db: Db,
    settings: Configured,
) -> dict[str, Any]:
    """A new catalogue or site version; 409 if a stored patient no longer resolves or the current
    plan would break a rule it keeps today."""
    with db.plan_write() as work:
        version = services.replace_catalogue(work, kind, body, settings.planning_day(), settings.horizon_days, who)
    return {"kind": kind, "version": version}
