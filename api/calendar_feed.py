"""A patient's booked steps as iCalendar events that a calendar client keeps up to date.

A booking that moves is a new ``BookingRow`` (bookings are versioned, ``api.db``), so the rows'
ids cannot name events. Each event stands for one *attempt* of a step instead (``attempts``),
with a UID and a SEQUENCE derived from the booking history alone, nothing stored:

- UID ``booking-<id of the attempt's first booking>@vein2vein``: the same across every move, and
  the UID the calendar always gave a booking that never moved. It carries no patient data.
- SEQUENCE: how many times the event changed (``_changes``), so a client that sees the same UID
  again replaces its copy instead of adding a second event.
- STATUS: CONFIRMED or TENTATIVE (planned, not yet confirmed); CANCELLED once the step is taken out
  of the plan without being booked again (a withdrawal, a release), or recorded as missed or
  cancelled. A step that took place stays as it was.
- DTSTAMP: the moment of the event's latest change (a plan version's or a record's), never "now",
  so a feed fetched twice with nothing changed is byte for byte the same.

Read side only: plain queries, no writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import state
from api.db import BookingRow, PlanVersion, StepRecord, as_utc

UID_DOMAIN = "vein2vein"
NOT_HELD = frozenset({"missed", "cancelled"})  # step record outcomes after which the booking did not happen
REFRESH = timedelta(hours=1)  # how often a subscribed client should fetch the feed again


@dataclass(frozen=True)
class StepEvent:
    """One attempt of a step as the calendar shows it."""

    uid: str
    step: str
    first_day: date
    last_day: date
    sequence: int
    status: str  # CONFIRMED, TENTATIVE or CANCELLED
    changed_at: datetime
    note: str  # what the event's status means, in words; never who fixed the date or why (it can name
    # another patient, "moved to make room for ...", and a feed can be handed to the patient)


class History:
    """What the events of one patient are derived from: their bookings (every version, by id), the
    plan versions those bookings entered and left the plan in, and the step records on them."""

    def __init__(self, session: Session, patient_id: str):
        self.bookings = list(
            session.scalars(select(BookingRow).where(BookingRow.patient_id == patient_id).order_by(BookingRow.id))
        )
        ids = {b.from_version for b in self.bookings} | {b.to_version for b in self.bookings if b.to_version}
        moments = select(PlanVersion.id, PlanVersion.created_at, PlanVersion.planning_day, PlanVersion.kind)
        self.versions = {v.id: v for v in session.execute(moments.where(PlanVersion.id.in_(ids)))} if ids else {}
        self.records: dict[int, list[StepRecord]] = defaultdict(list)
        query = select(StepRecord).where(StepRecord.patient_id == patient_id).order_by(StepRecord.id)
        for record in session.scalars(query):
            self.records[record.booking_id].append(record)

    def made_at(self, version_id: int) -> datetime:
        return as_utc(self.versions[version_id].created_at)

    def made_on(self, version_id: int) -> date:
        """The planning day a version was made on (before migration 0005 it was not kept: the day of its moment)."""
        version = self.versions[version_id]
        return version.planning_day or as_utc(version.created_at).date()

    def took_place(self, booking: BookingRow) -> bool:
        """Recorded as started or done, or taken out of the plan when it had started already (an
        out-of-specification restart, a withdrawal after the step began)."""
        records = self.records.get(booking.id)
        if records:
            return records[-1].outcome not in NOT_HELD
        return booking.to_version is not None and booking.first_day < self.made_on(booking.to_version)

    def carries_on(self, before: BookingRow, after: BookingRow) -> bool:
        """Whether ``after`` took ``before``'s place in the same plan version as the same attempt: put on
        the days it really took by a record (a version of kind ``record``), or kept as history on the
        days it had (a withdrawal, a restart)."""
        if after.from_version != before.to_version:
            return False
        return self.versions[after.from_version].kind == "record" or _kept_as_history(before, after)

    def closes(self, booking: BookingRow) -> bool:
        """Whether a later booking of the same step is a new attempt: this one took place, or it was
        recorded as missed or cancelled."""
        return bool(self.records.get(booking.id)) or self.took_place(booking)


def attempts(history: History) -> list[list[BookingRow]]:
    """The patient's bookings grouped into attempts, each attempt's bookings in order.

    An attempt of a step is the run of that step's bookings (by id) from one that follows no
    attempt up to the first that took place or was recorded as missed or cancelled (``History.closes``),
    with the copy a withdrawal or a restart keeps of it as history:
    every booking in between replaced the one before it (a move, a re-confirmation), or booked the
    step again after it had been taken out of the plan unused (a deferral). A booking after one
    that closes an attempt starts a new one: re-apheresis after an out-of-specification product,
    an apheresis booked again after it was missed, a second conditioning after the first was given.
    """
    by_step: dict[str, list[list[BookingRow]]] = defaultdict(list)
    for booking in history.bookings:
        runs = by_step[booking.step]
        if runs and (not history.closes(runs[-1][-1]) or history.carries_on(runs[-1][-1], booking)):
            runs[-1].append(booking)
        else:
            runs.append([booking])
    return sorted((run for runs in by_step.values() for run in runs), key=lambda run: run[0].id)


def _kept_as_history(before: BookingRow, after: BookingRow) -> bool:
    """``after`` carries ``before``'s days on in the plan (a withdrawal or a restart kept it, perhaps
    ended yesterday): the same attempt, not a new one."""
    return after.from_version == before.to_version and after.first_day == before.first_day


def step_events(session: Session, patient_id: str) -> list[StepEvent]:
    """Every attempt of every step the patient has ever had booked, oldest first."""
    history = History(session, patient_id)
    return [_event(run, history) for run in attempts(history)]


def _changes(run: list[BookingRow]) -> int:
    """The changes an attempt went through up to its last booking: each booking after the first is
    one, and so is each time the step was out of the plan in between (it was shown cancelled)."""
    gaps = sum(1 for before, after in pairwise(run) if before.to_version != after.from_version)
    same = sum(1 for b, a in pairwise(run) if _kept_as_history(b, a) and a.last_day == b.last_day)  # no change
    return len(run) - 1 + gaps - same


def _record_changes(records: list[StepRecord]) -> int:
    """How many times a booking's records turned its event from held to cancelled or back."""
    held, flips = True, 0
    for record in records:
        now_held = record.outcome not in NOT_HELD
        flips += now_held != held
        held = now_held
    return flips


def _event(run: list[BookingRow], history: History) -> StepEvent:
    """The event of an attempt, as its last booking and that booking's records leave it. Records are
    taken to be made on bookings of the current plan (a record on a booking already taken out of
    the plan unused could bring its SEQUENCE back down)."""
    last = run[-1]
    # a copy kept as history on the same days changes nothing: the event, its records and its moment are the original's
    while len(run) > 1 and _kept_as_history(run[-2], last) and last.last_day == run[-2].last_day:
        run, last = run[:-1], run[-2]
    records = history.records.get(last.id, [])
    sequence = _changes(run) + _record_changes(records)
    changed_at = history.made_at(last.from_version)
    if records:
        changed_at = max(changed_at, as_utc(records[-1].recorded_at))
    uid = f"booking-{run[0].id}@{UID_DOMAIN}"
    if records and records[-1].outcome in NOT_HELD:
        status, note = "CANCELLED", f"recorded as {records[-1].outcome}"
    elif last.to_version is None or history.took_place(last):
        status = "CONFIRMED" if last.status == "confirmed" or records else "TENTATIVE"
        note = "confirmed" if status == "CONFIRMED" else "planned, not yet confirmed"
    else:  # taken out of the plan before it started, and not booked again
        status, note = "CANCELLED", "taken out of the plan"
        sequence += 1
        changed_at = history.made_at(last.to_version)
    return StepEvent(uid, last.step, last.first_day, last.last_day, sequence, status, changed_at, note)


def ics(session: Session, patient_id: str) -> bytes:
    """The patient's calendar: one all-day event per attempt of a step (pseudonymous id only)."""
    from icalendar import Calendar, Event, vDuration

    patient = state.get_patient(session, patient_id)
    calendar = Calendar()
    calendar.add("prodid", "-//vein2vein//timeline//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{patient_id} ({patient.pathway})")
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    for step in step_events(session, patient_id):
        event = Event()
        event.add("uid", step.uid)
        event.add("sequence", step.sequence)
        event.add("dtstamp", step.changed_at)
        event.add("dtstart", step.first_day)
        event.add("dtend", step.last_day + timedelta(days=1))
        event.add("summary", f"{patient_id}: {step.step.replace('_', ' ')}")
        event.add("description", f"{patient.pathway}; {step.note}")
        event.add("status", step.status)
        calendar.add_component(event)
    return calendar.to_ical()
