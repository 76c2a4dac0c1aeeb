"""Capacity by resource and day, lab managers' closures and changes, and re-planning around them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from api import views, workflows
from api.answers import ActiveCapacityChange, CapacityChangeAdded, CapacityChangeWithdrawn, CapacityTable, Replanned
from api.deps import Anyone, Configured, Db, LabManager, Planner, RowId, Running
from api.schemas import ApiDate, CapacityChangeIn, ReplanIn, ResourceRef
from pathway.errors import InputError

router = APIRouter(tags=["capacity"])


class Window:
    """The days and resources a capacity view covers (default: 90 days from today, at most 366)."""

    def __init__(
        self,
        settings: Configured,
        first: Annotated[ApiDate | None, Query(alias="from", description="first day (default: today)")] = None,
        last: Annotated[
            ApiDate | None,
            Query(alias="to", description="last day (default: from + 89 days); not before from, at most 366 days on"),
        ] = None,
        resource: Annotated[ResourceRef | None, Query(description="a resource id or kind")] = None,
    ):
        self.first: date = first or settings.planning_day()
        self.last: date = last or self.first + timedelta(days=89)
        if self.last < self.first:
            raise InputError("", "to", "is before from")
        if (self.last - self.first).days + 1 > views.MAX_RANGE_DAYS:
            raise InputError("", "to", f"a range is at most {views.MAX_RANGE_DAYS} days")
        self.resource = resource


Days = Annotated[Window, Depends()]


@router.get("/capacity", response_model=CapacityTable)
def capacity(who: Anyone, window: Days, db: Db, settings: Configured) -> dict[str, Any]:
    with db.read() as work:
        return views.capacity_table(work.session, window.first, window.last, settings, window.resource)


@router.get(
    "/capacity.csv",
    response_class=Response,  # errors are JSON, as everywhere (a PlainTextResponse would document them as text)
    responses={
        200: {
            "description": "the capacity table as CSV, one row per resource and day",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def capacity_csv(who: Anyone, window: Days, db: Db, settings: Configured) -> Response:
    with db.read() as work:
        table = views.capacity_table(work.session, window.first, window.last, settings, window.resource)
    return Response(
        views.capacity_csv(table),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="capacity-{window.first}-{window.last}.csv"'},
    )


@router.get("/capacity/changes", response_model=list[ActiveCapacityChange])
def list_changes(who: Anyone, db: Db) -> list[dict[str, Any]]:
    with db.read() as work:
        return views.capacity_changes(work.session)


@router.post("/capacity/changes", status_code=201, response_model=CapacityChangeAdded)
def add_change(body: CapacityChangeIn, who: LabManager, running: Running) -> dict[str, Any]:
    """A closure (capacity 0) or change; the answer lists the patients whose bookings it breaks."""
    return workflows.add_capacity_change(running, body, who)


@router.delete("/capacity/changes/{change_id}", response_model=CapacityChangeWithdrawn)
def withdraw_change(change_id: RowId, who: LabManager, running: Running) -> dict[str, Any]:
    return workflows.withdraw_capacity_change(running, change_id, who)


@router.post("/capacity/changes/{change_id}/replan", response_model=Replanned, response_model_exclude_unset=True)
def replan_change(change_id: RowId, who: Planner, running: Running) -> dict[str, Any]:
    """Re-plan the patients whose bookings this change breaks (nobody else moves)."""
    return workflows.replan_capacity_change(running, change_id, who)


@router.post("/replan", response_model=Replanned, response_model_exclude_unset=True)
def replan(body: ReplanIn, who: Planner, running: Running) -> dict[str, Any]:
    """Re-plan these patients' bookings that have not started; everyone else stays where they are."""
    return workflows.replan_asked(running, set(body.patients), body.reason, who)
