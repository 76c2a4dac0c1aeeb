"""The nightly re-solve: its last report, its run history, and starting a run now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import nightly
from api.answers import NightlyRunReport, NightlyRuns, NightlyRunView
from api.deps import Admin, Anyone, Configured, Db, RowId, Running

router = APIRouter(prefix="/jobs/nightly", tags=["nightly"])


@router.get("/report", response_model=NightlyRunReport, response_model_exclude_unset=True)
def nightly_report(who: Anyone, db: Db) -> dict[str, Any]:
    """The last finished nightly run and its report: per patient what moved, from, to and why;
    unschedulable patients first."""
    with db.read() as work:
        return nightly.latest_report(work.session)


@router.get("/runs", response_model=NightlyRuns)
def nightly_runs(
    who: Admin,
    running: Running,
    settings: Configured,
    limit: Annotated[int, Query(ge=1, le=500)] = 30,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """Run history (newest first): start, end, status, solver stats, bookings moved; and the next scheduled run."""
    next_run = running.nightly.next_run()
    with running.database.read() as work:
        runs = nightly.run_history(work.session, limit, offset)
    return {
        "enabled": settings.nightly_enabled,
        "schedule": f"{settings.nightly_at} {settings.nightly_timezone}",
        "next_run": next_run.isoformat() if next_run else None,
        "runs": runs,
    }


@router.get("/runs/{run_id}", response_model=NightlyRunReport, response_model_exclude_unset=True)
def nightly_run(run_id: RowId, who: Admin, db: Db) -> dict[str, Any]:
    with db.read() as work:
        return nightly.run_with_report(work.session, run_id)


@router.post("/runs", status_code=202, response_model=NightlyRunView)
def nightly_run_now(who: Admin, running: Running) -> dict[str, Any]:
    """Start a run now (in the background); 409 while another run is in progress."""
    return running.nightly.run_now(who)
