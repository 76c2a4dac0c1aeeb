"""Referrals and each patient's schedule: register, edit, propose, defer, out of specification,
withdraw and reinstate, dates confirmed with the patient; the timeline and its calendar."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api import calendar_feed, views, workflows
from api.answers import (
    ConfirmationView,
    EditedPatient,
    PatientPage,
    PatientStatus,
    PatientView,
    ProposalView,
    Released,
    Timeline,
)
from api.deps import PATIENT_ID_PATTERN, Anyone, Configured, Coordinator, Db, PatientId, Running
from api.schemas import (
    Code,
    ConfirmationIn,
    DeferIn,
    OutOfSpecificationIn,
    ReferralEdit,
    ReferralIn,
    ReinstateIn,
    Screened,
    WithdrawIn,
)

router = APIRouter(prefix="/patients", tags=["patients"])
ID_PREFIX = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"


@router.post("", status_code=201, response_model=PatientView)
def register(body: ReferralIn, who: Coordinator, running: Running) -> dict[str, Any]:
    return workflows.register(running, body, who)


@router.get("", response_model=PatientPage)
def list_patients(
    who: Anyone,
    db: Db,
    settings: Configured,
    limit: Annotated[int, Query(ge=1, le=views.MAX_PAGE_LIMIT, description="patients per page")] = views.PAGE_LIMIT,
    after: Annotated[
        Screened | None,
        Query(pattern=PATIENT_ID_PATTERN, description="the previous page's `next_after` (keyset cursor)"),
    ] = None,
    status: Annotated[PatientStatus | None, Query()] = None,
    pathway: Annotated[Code | None, Query(description="a template id")] = None,
    centre: Annotated[Code | None, Query()] = None,
    q: Annotated[
        Screened | None, Query(pattern=ID_PREFIX, description="the start of a patient id (any letter case)")
    ] = None,
) -> dict[str, Any]:
    """Patients by id, a page at a time, filtered by status, pathway, centre and the start of the id.
    ``total`` counts every match; ``next_after`` (null on the last page) asks for the next page."""
    with db.read() as work:
        return views.patients(work.session, settings.planning_day(), limit, after, status, pathway, centre, q)


@router.get("/{patient_id}", response_model=PatientView)
def get_patient(patient_id: PatientId, who: Anyone, db: Db) -> dict[str, Any]:
    with db.read() as work:
        return views.patient_view(work.session, patient_id)


@router.patch("/{patient_id}", response_model=EditedPatient)
def edit(patient_id: PatientId, body: ReferralEdit, who: Coordinator, running: Running) -> dict[str, Any]:
    return workflows.edit(running, patient_id, body, who)


@router.post("/{patient_id}/proposals", status_code=201, response_model=ProposalView)
def propose(patient_id: PatientId, who: Coordinator, running: Running) -> dict[str, Any]:
    """The earliest schedule that moves nobody (option 0, ``kind: fast``) and up to a few
    ranked alternatives that move other patients' bookings (each lists its moves)."""
    return workflows.propose(running, patient_id, who)


@router.post("/{patient_id}/defer", response_model=Released, response_model_exclude_unset=True)
def defer(patient_id: PatientId, body: DeferIn, who: Coordinator, running: Running) -> dict[str, Any]:
    """Nothing before ``from_date``: bookings not started are released; a new proposal is returned."""
    return workflows.defer(running, patient_id, body.from_date, body.reason, who)


@router.post("/{patient_id}/out-of-specification", response_model=Released, response_model_exclude_unset=True)
def out_of_specification(
    patient_id: PatientId, body: OutOfSpecificationIn, who: Coordinator, running: Running
) -> dict[str, Any]:
    """The product failed: restart at re-apheresis or re-manufacture; a new proposal is returned."""
    return workflows.out_of_specification(running, patient_id, body.redo, body.reason, who)


@router.post("/{patient_id}/withdraw", response_model=Released, response_model_exclude_unset=True)
def withdraw(patient_id: PatientId, body: WithdrawIn, who: Coordinator, running: Running) -> dict[str, Any]:
    """Withdrawn or deceased (``cause``): bookings from today on are released; what happened stays."""
    return workflows.withdraw(running, patient_id, body.reason, body.cause, who)


@router.post("/{patient_id}/reinstate", response_model=Released, response_model_exclude_unset=True)
def reinstate(patient_id: PatientId, body: ReinstateIn, who: Coordinator, running: Running) -> dict[str, Any]:
    """A withdrawn patient is referred again (409 if deceased, or if another referral now has their
    NHS number); a new proposal is returned."""
    return workflows.reinstate(running, patient_id, body.reason, who)


@router.post(
    "/{patient_id}/confirmations", status_code=201, response_model=ConfirmationView, response_model_exclude_unset=True
)
def confirmation(patient_id: PatientId, body: ConfirmationIn, who: Coordinator, running: Running) -> dict[str, Any]:
    """The current dates were confirmed with the patient: recorded as a ``confirmation`` event."""
    return workflows.record_confirmation(running, patient_id, body.note, who)


@router.get("/{patient_id}/timeline", response_model=Timeline)
def timeline(patient_id: PatientId, who: Anyone, db: Db, settings: Configured) -> dict[str, Any]:
    with db.read() as work:
        return views.timeline(work.session, patient_id, settings)


@router.get(
    "/{patient_id}/calendar.ics",
    response_class=Response,
    responses={
        200: {
            "description": "the timeline as iCalendar all-day events",
            "content": {"text/calendar": {"schema": {"type": "string"}}},
        }
    },
)
def calendar(patient_id: PatientId, who: Anyone, db: Db) -> Response:
    with db.read() as work:
        body = calendar_feed.ics(work.session, patient_id)
    return Response(
        body, media_type="text/calendar", headers={"Content-Disposition": f'attachment; filename="{patient_id}.ics"'}
    )
