"""A patient's calendar feed behind a revocable secret link: coordinators make, list and revoke
links; the feed itself needs no sign-in (calendar clients cannot sign in), only the secret.

The feed's path holds the secret, so nothing may log it: the access log names the route
template (``/calendar/{secret}.ics``), and an unknown, revoked or malformed secret gets one
and the same 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api import calendar_feed, calendar_links
from api.answers import CalendarLinkCreated, CalendarLinkView
from api.deps import Coordinator, Db, PatientId, RowId

router = APIRouter(tags=["calendars"])
ICS = "text/calendar; charset=utf-8"


@router.post("/patients/{patient_id}/calendar-links", status_code=201, response_model=CalendarLinkCreated)
def create_link(patient_id: PatientId, who: Coordinator, db: Db) -> dict[str, Any]:
    """A new secret link to the patient's feed. ``feed`` holds the secret: it is shown this once."""
    with db.write() as work:
        link, secret = calendar_links.create(work, patient_id, who)
        return calendar_links.created_view(link, secret)


@router.get("/patients/{patient_id}/calendar-links", response_model=list[CalendarLinkView])
def list_links(patient_id: PatientId, who: Coordinator, db: Db) -> list[dict[str, Any]]:
    """The patient's links, oldest first, revoked ones too (never their secrets)."""
    with db.read() as work:
        return [calendar_links.view(link) for link in calendar_links.of_patient(work.session, patient_id)]


@router.delete("/patients/{patient_id}/calendar-links/{link_id}", response_model=CalendarLinkView)
def revoke_link(patient_id: PatientId, link_id: RowId, who: Coordinator, db: Db) -> dict[str, Any]:
    """Revoke a link: its feed answers 404 from now on (409 if it is revoked already)."""
    with db.write() as work:
        return calendar_links.view(calendar_links.revoke(work, patient_id, link_id, who))


@router.get(
    calendar_links.FEED_PATH,
    response_class=Response,
    responses={
        200: {
            "description": "the patient's booked steps as iCalendar all-day events (no sign-in: the secret is the key)",
            "content": {"text/calendar": {"schema": {"type": "string"}}},
        }
    },
)
def feed(secret: str, db: Db) -> Response:
    with db.read() as work:
        body = calendar_feed.ics(work.session, calendar_links.patient_of(work.session, secret))
    return Response(body, media_type=ICS)
