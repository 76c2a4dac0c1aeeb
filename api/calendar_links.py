"""Secret links to a patient's calendar feed (``GET /calendar/{secret}.ics``), for calendar
clients, which cannot sign in.

A link's secret is 32 random bytes (URL-safe text) shown once, when the link is made; the
database keeps only its SHA-256, as for API tokens (``api.auth``). A coordinator can list a
patient's links (never their secrets) and revoke one: from then on its feed answers 404, the
same answer as for a secret that never existed. Making and revoking a link is audited; the
secret never reaches the audit log or any other log.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import state
from api.audit import Actor, record
from api.auth import hash_token
from api.db import CalendarLink, as_utc, utcnow
from api.state import Conflict, NotFound
from api.unit_of_work import UnitOfWork

FEED_PATH = "/calendar/{secret}.ics"
NO_FEED = "no calendar feed at this address: the link is unknown or has been revoked"


def create(work: UnitOfWork, patient_id: str, actor: Actor) -> tuple[CalendarLink, str]:
    """A new link to the patient's feed; returns it and its secret (the only time it is known)."""
    session = work.session
    state.get_patient(session, patient_id)
    secret = secrets.token_urlsafe(32)
    link = CalendarLink(patient_id=patient_id, token_hash=hash_token(secret), created_by=actor.name)
    session.add(link)
    session.flush()
    record(session, actor, "calendar_link.create", "calendar_link", link.id, None, {"patient": patient_id})
    return link, secret


def of_patient(session: Session, patient_id: str) -> list[CalendarLink]:
    state.get_patient(session, patient_id)
    query = select(CalendarLink).where(CalendarLink.patient_id == patient_id).order_by(CalendarLink.id)
    return list(session.scalars(query))


def revoke(work: UnitOfWork, patient_id: str, link_id: int, actor: Actor) -> CalendarLink:
    """Revoke one of the patient's links: its feed answers 404 from now on."""
    session = work.session
    state.get_patient(session, patient_id)
    link = session.get(CalendarLink, link_id)
    if link is None or link.patient_id != patient_id:
        raise NotFound(f"patient {patient_id} has no calendar link {link_id}")
    if link.revoked_at is not None:
        raise Conflict(f"calendar link {link_id} is revoked already")
    link.revoked_at = utcnow()
    session.flush()
    record(
        session,
        actor,
        "calendar_link.revoke",
        "calendar_link",
        link.id,
        {"patient": patient_id, "revoked_at": None},
        {"patient": patient_id, "revoked_at": as_utc(link.revoked_at).isoformat()},
    )
    return link


def patient_of(session: Session, secret: str) -> str:
    """The patient whose feed ``secret`` opens; NotFound (one message) if unknown or revoked."""
    link = session.scalars(select(CalendarLink).where(CalendarLink.token_hash == hash_token(secret))).first()
    if link is None or link.revoked_at is not None:
        raise NotFound(NO_FEED)
    return link.patient_id


def view(link: CalendarLink) -> dict[str, Any]:
    return {
        "id": link.id,
        "patient": link.patient_id,
        "created_at": as_utc(link.created_at).isoformat(),
        "created_by": link.created_by,
        "revoked_at": as_utc(link.revoked_at).isoformat() if link.revoked_at else None,
    }


def created_view(link: CalendarLink, secret: str) -> dict[str, Any]:
    return view(link) | {"feed": FEED_PATH.format(secret=secret)}
