"""Plan versions, their bookings and the differences between two of them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import views
from api.answers import PlanDiff, PlanVersionView, PlanView
from api.deps import Anyone, Db, RowId

router = APIRouter(prefix="/plans", tags=["plans"])


@router.get("", response_model=list[PlanVersionView])
def list_plans(
    who: Anyone,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[dict[str, Any]]:
    with db.read() as work:
        return views.list_versions(work.session, limit, offset)


@router.get("/current", response_model=PlanView)
def current_plan(who: Anyone, db: Db) -> dict[str, Any]:
    with db.read() as work:
        return views.plan_view(work.session)


@router.get("/diff", response_model=PlanDiff, response_model_exclude_unset=True)
def plan_diff(
    who: Anyone,
    db: Db,
    from_version: Annotated[int, Query(alias="from", ge=1, le=2**31 - 1)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=2**31 - 1)],
) -> dict[str, Any]:
    with db.read() as work:
        return views.diff(work.session, from_version, to_version)


@router.get("/{version_id}", response_model=PlanView)
def get_plan(version_id: RowId, who: Anyone, db: Db) -> dict[str, Any]:
    with db.read() as work:
        return views.plan_view(work.session, version_id)
