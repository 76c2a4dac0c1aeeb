"""From database rows to the domain's objects (Catalogue, Site, Problem, Plan) and back.

The solver and the checker never see the database: a use case reads rows,
turns them into a ``Problem`` and a ``Plan`` here, and writes results back.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from api.db import (
    BookingRow,
    CapacityChangeRow,
    CatalogueVersion,
    EventRow,
    PatientRow,
    PlanHead,
    PlanVersion,
    ProductRow,
    StepRecord,
    as_utc,
)
from api.settings import Settings
from pathway.catalogue import Catalogue, StepKind
from pathway.cohort import Problem, parse_cohort
from pathway.dates import say_day
from pathway.errors import validation_error
from pathway.plan import Booking, Plan, Unschedulable
from pathway.site import Site


class NotFound(Exception):
    """A named thing does not exist (HTTP 404)."""


class Conflict(Exception):
    """The request is valid but clashes with the current state (HTTP 409)."""


class NotYours(Exception):
    """The actor's role may not do this to this thing (HTTP 403), though it may do it to others."""


_parsed: dict[tuple[str, str], Any] = {}  # (kind, hash of the stored body) -> parsed; keyed by content, so a
# rolled-back row whose id is reused (SQLite) or another database in this process can never be served
_seen: dict[tuple[str, str, int, Any], tuple[str, str]] = {}  # (database, kind, row id, created_at) -> content key:
# a version already read is known by its id and moment alone (its body is neither read nor hashed again)


def _key(row: CatalogueVersion) -> tuple[str, str]:
    return row.kind, hashlib.sha256(json.dumps(row.body, sort_keys=True).encode()).hexdigest()


def latest(session: Session, kind: str) -> CatalogueVersion:
    row = session.scalars(_latest(kind)).first()
    if row is None:
        raise _none_loaded(kind)
    return row


def _latest(kind: str):
    return select(CatalogueVersion).where(CatalogueVersion.kind == kind).order_by(CatalogueVersion.id.desc()).limit(1)


def _none_loaded(kind: str) -> NotFound:
    return NotFound(f"no {kind} loaded: run `v2v db init` (or `v2v demo`)")


def _in_force(session: Session, kind: str, parse: Callable[[dict[str, Any]], Any]) -> Any:
    """The latest ``kind`` parsed. Every request asks, so the body (tens of kB of JSON) is read,
    hashed and parsed only the first time this process meets a version: after that, one small query
    for the latest version's id and moment finds it."""
    head = session.execute(_latest(kind).with_only_columns(CatalogueVersion.id, CatalogueVersion.created_at)).first()
    if head is None:
        raise _none_loaded(kind)
    stamp = (session.get_bind().url.render_as_string(), kind, head.id, head.created_at)
    key = _seen.get(stamp)
    if key is None:
        row = session.get(CatalogueVersion, head.id)
        key = _key(row)
        if key not in _parsed:
            _parsed[key] = parse(row.body)
        _seen[stamp] = key
    return _parsed[key]


def catalogue(session: Session, variants: bool = True) -> Catalogue:
    """The catalogue in force; with ``variants``, plus each template's re-manufacture variant
    (the pathway of a patient whose product failed and is remade from retained cells)."""

    def parse(body: dict[str, Any]) -> tuple[Catalogue, Catalogue]:
        stored = Catalogue.model_validate(body)
        return stored, stored.with_remanufacture()

    return _in_force(session, "pathways", parse)[1 if variants else 0]


def base_site(session: Session) -> Site:
    """The site as defined (calendars, resources, standing capacity changes), without lab managers' changes."""
    return _in_force(session, "site", Site.model_validate)


def active_changes(session: Session) -> list[CapacityChangeRow]:
    return list(
        session.scalars(
            select(CapacityChangeRow).where(CapacityChangeRow.withdrawn_at.is_(None)).order_by(CapacityChangeRow.id)
        )
    )


def change_dict(row: CapacityChangeRow) -> dict[str, Any]:
    return {
        "resource": row.resource,
        "centre": row.centre,
        "first_day": row.first_day.isoformat(),
        "last_day": row.last_day.isoformat(),
        "capacity": row.capacity,
        "reason": row.reason,
    }


def change_words(change: dict[str, Any]) -> str:
    """A capacity change (``change_dict`` and its id) as a coordinator reads it, e.g. 'closure 3 of
    liverpool/apheresis_machine on Tue 12 Jan 2027 (machine service)'."""
    kind = "closure" if change.get("capacity") == 0 else "capacity change"
    where = f"{change['centre']}/{change['resource']}" if change.get("centre") else str(change.get("resource"))
    first, last = date.fromisoformat(change["first_day"]), date.fromisoformat(change["last_day"])
    days = f"on {say_day(first)}" if first == last else f"from {say_day(first)} to {say_day(last)}"
    reason = f" ({change['reason']})" if change.get("reason") else ""
    return f"{kind} {change.get('id')} of {where} {days}{reason}"


def site(session: Session) -> Site:
    """The site with every active capacity change applied (later changes win)."""
    return site_with(base_site(session), active_changes(session))


def site_with(base: Site, changes: list[CapacityChangeRow]) -> Site:
    """``base`` with ``changes`` applied (later changes win)."""
    if not changes:
        return base
    raw = base.model_dump(mode="json")
    raw["capacity_changes"] += [change_dict(c) for c in changes]
    try:
        return Site.model_validate(raw)
    except ValidationError as exc:  # a stored change no longer matches an edited site
        raise validation_error("site", exc) from None


# -- patients and plans -------------------------------------------------------------------------
def patient_fields(row: PatientRow) -> dict[str, Any]:
    """The referral as the domain's Patient fields (no NHS number: the domain never sees it)."""
    return {
        "id": row.id,
        "centre": row.centre,
        "pathway": row.pathway,
        "approval_date": row.approval_date.isoformat(),
        "earliest_start": row.earliest_start.isoformat() if row.earliest_start else None,
        "urgency": row.urgency,
        "target_infusion_date": row.target_infusion_date.isoformat() if row.target_infusion_date else None,
        "last_doses": dict(row.last_doses or {}),
        "blackouts": list(row.blackouts or []),
        "durations": dict(row.durations or {}),
    }


def get_patient(session: Session, patient_id: str) -> PatientRow:
    row = session.get(PatientRow, patient_id)
    if row is None:
        raise NotFound(f"no patient {patient_id!r}")
    return row


def refuse_withdrawn(row: PatientRow) -> PatientRow:
    """The patient, unless withdrawn: a withdrawn patient can be read and reinstated, nothing else (Conflict)."""
    if row.status == "withdrawn":
        raise Conflict(f"patient {row.id} is withdrawn: only reinstating them is possible")
    return row


HISTORY_KINDS = ("oos", "withdrawal", "reinstatement", "remobilisation", "stopped")
"""Plan versions that book nothing new. What such a version adds to the plan is history: the bookings
of an attempt it interrupted (a stay ended yesterday, a failed product's manufacture), carried over
so that their days stay in the plan. History is shown (timeline, capacity) but never planned with:
not frozen, not in the plan the solver and the checker read, and replaced once its step is booked
again."""


def current_rows(session: Session, patient_id: str | None = None, planned: bool = False) -> list[BookingRow]:
    """The current plan's bookings (of one patient); ``planned``: only those the plan plans with."""
    query = select(BookingRow)
    if patient_id is not None:
        query = query.where(BookingRow.patient_id == patient_id)
    if planned:
        query = _planned(query)
    return list(session.scalars(_current(query)))


def _planned(query):
    """``query`` narrowed to the bookings the plan plans with: neither history nor a withdrawn patient's."""
    history = select(PlanVersion.id).where(PlanVersion.kind.in_(HISTORY_KINDS))
    withdrawn = select(PatientRow.id).where(PatientRow.status == "withdrawn")
    return query.where(BookingRow.from_version.not_in(history), BookingRow.patient_id.not_in(withdrawn))


def history_rows(session: Session, patient_ids: set[str]) -> list[BookingRow]:
    """The current bookings of these patients that are history (``HISTORY_KINDS``)."""
    history = select(PlanVersion.id).where(PlanVersion.kind.in_(HISTORY_KINDS))
    query = select(BookingRow).where(
        BookingRow.patient_id.in_(sorted(patient_ids)), BookingRow.from_version.in_(history)
    )
    return list(session.scalars(_current(query)))


def _current(query):
    """``query`` narrowed to the current plan's bookings, by patient, first day and id."""
    return query.where(BookingRow.to_version.is_(None)).order_by(
        BookingRow.patient_id, BookingRow.first_day, BookingRow.id
    )


BOOKED = (BookingRow.patient_id, BookingRow.step, BookingRow.first_day, BookingRow.last_day)
"""The columns a plan needs of a booking: views that only read the plan select these, not whole rows
(a row object costs ten times what its columns do, and a plan has a few thousand bookings)."""


def as_booking(row: BookingRow) -> Booking:
    """The plan's booking of a ``BookingRow``, or of a row of its ``BOOKED`` columns."""
    return Booking(patient=row.patient_id, step=row.step, first_day=row.first_day, last_day=row.last_day)


def latest_records(session: Session, patient_ids: set[str] | None = None) -> dict[int, StepRecord]:
    """Booking id -> the latest record of it (its state: started, done, missed or cancelled): of these
    patients' bookings, current or not; with no patients named, of the current plan's bookings only
    (a whole-site read never loads every record ever made)."""
    query = select(StepRecord).order_by(StepRecord.id)
    if patient_ids is not None:
        query = query.where(StepRecord.patient_id.in_(sorted(patient_ids)))
    else:
        query = query.join(BookingRow, BookingRow.id == StepRecord.booking_id).where(BookingRow.to_version.is_(None))
    return {r.booking_id: r for r in session.scalars(query)}


def current_products(session: Session, patient_id: str) -> list[ProductRow]:
    """The patient's products since the pathway last restarted: an out-of-specification restart
    (re-manufacture, re-apheresis) leaves the failed product out of every gate, whatever its custody
    was recorded as."""
    restart = session.scalar(
        select(func.max(EventRow.created_at)).where(EventRow.patient_id == patient_id, EventRow.kind == "oos")
    )
    query = select(ProductRow).where(ProductRow.patient_id == patient_id)
    if restart is not None:
        query = query.where(ProductRow.created_at > restart)
    return list(session.scalars(query.order_by(ProductRow.id)))


def under_way(booking: BookingRow, today: date, records: dict[int, StepRecord]) -> bool:
    """Whether a booking has started: its first day has passed, or it is recorded as started or done
    (today's conditioning, recorded this morning, is a fact that no re-plan or proposal may move)."""
    record = records.get(booking.id)
    return booking.first_day < today or (record is not None and record.outcome in ("started", "done"))


def head(session: Session) -> PlanHead:
    return session.get(PlanHead, 1)


def current_version(session: Session) -> PlanVersion | None:
    h = head(session)
    return session.get(PlanVersion, h.version_id) if h.version_id else None


def lock_plan(session: Session) -> PlanHead:
    """Start a plan write: bump the head row, which queues every other plan writer behind this one."""
    session.execute(update(PlanHead).where(PlanHead.id == 1).values(changes=PlanHead.changes + 1))
    h = head(session)
    session.refresh(h)
    return h


def working_days_after(site_: Site, day: date, n: int) -> date:
    """The ``n``-th working day after ``day`` (``day`` itself when n == 0)."""
    d = day
    while n > 0:
        d += timedelta(days=1)
        if site_.is_open("working_day", d):
            n -= 1
    return d


def build_problem(
    session: Session,
    today: date,
    horizon_days: int,
    freeze_until: date | None = None,
    include: set[str] | None = None,
    fixed: frozenset[str] | set[str] = frozenset(),
    reopened: frozenset[str] | set[str] = frozenset(),
    hold_products: bool = False,
) -> Problem:
    """Every active patient (or those in ``include``) as a Problem planned from ``today``.

    Current bookings that have started (first day before ``today``), or start on
    or before ``freeze_until``, become the patient's frozen steps. Patients in
    ``fixed`` keep every current booking frozen; patients in ``reopened`` only
    the ones that have started (``freeze_until`` does not hold them).
    ``hold_products``: once a patient's cells are collected, the product's
    processing, manufacture and release bookings are frozen too (the nightly
    re-solve never moves a product that exists).
    """
    cat = catalogue(session)
    query = select(PatientRow).where(PatientRow.status != "withdrawn").order_by(PatientRow.id)
    bookings = _planned(
        select(BookingRow.id, BookingRow.patient_id, BookingRow.step, BookingRow.first_day, BookingRow.last_day).where(
            BookingRow.to_version.is_(None)
        )
    )
    if include is not None:
        query = query.where(PatientRow.id.in_(sorted(include)))
        bookings = bookings.where(BookingRow.patient_id.in_(sorted(include)))
    booked: dict[str, list[BookingRow]] = {}
    for b in session.execute(bookings):
        booked.setdefault(b.patient_id, []).append(b)
    records = latest_records(session, include)
    started = today - timedelta(days=1)
    last_frozen = max(started, freeze_until or started)
    patients = []
    for row in session.scalars(query):
        fields = patient_fields(row)
        limit = date.max if row.id in fixed else started if row.id in reopened else last_frozen
        mine = booked.get(row.id, [])
        held = hold_products and row.id not in reopened and _collected(cat, row.pathway, mine, today)
        fields["frozen"] = [
            _frozen(b, records.get(b.id), today)
            for b in mine
            if b.first_day <= limit
            or b.id in records
            or (held and cat.template(row.pathway).step(b.step).kind in PRODUCT_KINDS)
        ]
        patients.append(fields)
    raw = {
        "name": "site",
        "site": site(session),
        "horizon": {"start": today.isoformat(), "days": horizon_days},
        "patients": patients,
    }
    return parse_cohort(raw, source="database", catalogue=cat)


def _frozen(booking, record: StepRecord | None, today: date) -> dict[str, Any]:
    """A current booking as a frozen step: a recorded step (started or done; a missed one is no longer
    booked) is a fact whatever its day. One recorded or under way keeps the days it is booked for
    (those it took, or those a late product's manufacture now takes); one fixed ahead keeps its length."""
    out = {"step": booking.step, "first_day": booking.first_day.isoformat()}
    if record is not None or booking.first_day < today:
        out["last_day"] = booking.last_day.isoformat()
    return out


def held_problem(session: Session, settings: Settings, include: set[str] | None = None) -> Problem:
    """The Problem as the nightly re-solve sees it: what has started, every booking up to the
    ``freeze_working_days``-th working day ahead and every collected product are fixed."""
    today = settings.planning_day()
    freeze_until = working_days_after(site(session), today, settings.freeze_working_days)
    return build_problem(
        session, today, settings.horizon_days, freeze_until=freeze_until, include=include, hold_products=True
    )


COLLECTION_KINDS = {StepKind.apheresis, StepKind.donor_collection}
PRODUCT_KINDS = {StepKind.processing, StepKind.manufacture, StepKind.release}


def _collected(cat: Catalogue, pathway: str, bookings: list[BookingRow], today: date) -> bool:
    """Whether a collection of this patient's cells has started before ``today``."""
    template = cat.template(pathway)
    return any(b.first_day < today and template.step(b.step).kind in COLLECTION_KINDS for b in bookings)


def current_plan(session: Session) -> Plan:
    """The current plan as the solver and the checker read it: history and withdrawn patients left out."""
    version = current_version(session)
    withdrawn = set(session.scalars(select(PatientRow.id).where(PatientRow.status == "withdrawn")))
    unschedulable = tuple(
        Unschedulable.model_validate(u)
        for u in (version.unschedulable if version else [])
        if u["patient"] not in withdrawn
    )
    return Plan(
        cohort="site",
        method="current",
        bookings=tuple(as_booking(b) for b in session.execute(_current(_planned(select(*BOOKED))))),
        unschedulable=unschedulable,
    )


def usage_problem(session: Session, today: date, horizon_days: int, patients: set[str]) -> Problem:
    """``patients`` (withdrawn ones too) with their steps, durations and resources and nothing frozen:
    what the load of their bookings, past ones included, is read from."""
    rows = session.scalars(select(PatientRow).where(PatientRow.id.in_(sorted(patients))).order_by(PatientRow.id))
    raw = {
        "name": "site",
        "site": site(session),
        "horizon": {"start": today.isoformat(), "days": horizon_days},
        "patients": [patient_fields(row) for row in rows],
    }
    return parse_cohort(raw, source="database", catalogue=catalogue(session))


# -- what was in force on a past day ------------------------------------------------------------
def local_day(moment: datetime, zone: str) -> date:
    """The date of a stored moment where the site is (rows made before planning days were stored)."""
    return as_utc(moment).astimezone(ZoneInfo(zone)).date()


@dataclass
class InForce:
    """The days ``first_day`` .. ``last_day`` and the bookings in force on them (rows of ``BOOKED``
    columns) that touch those days or the six before them (a weekly cell counts from its Monday)."""

    first_day: date
    last_day: date
    version: int | None  # the plan version in force (None: the current plan, or no plan yet)
    bookings: list[Any] = field(default_factory=list)


def bookings_in_force(session: Session, first: date, last: date, today: date, zone: str) -> list[InForce]:
    """The bookings in force on every day of ``first`` .. ``last``, a stretch of days at a time: on a
    day before ``today``, those of the plan version in force at its end (the latest one made on or
    before it); from ``today`` on, the current plan's. Three queries whatever the range: the past
    days are grouped by the version in force, and their bookings read at once."""
    stretches = _past_stretches(session, first, min(last, today - timedelta(days=1)), zone)
    _fill_past(session, [s for s in stretches if s.version is not None])
    if last >= today:
        now = InForce(max(first, today), last, None)
        now.bookings = session.execute(
            _current(select(*BOOKED)).where(
                BookingRow.first_day <= last, BookingRow.last_day >= now.first_day - timedelta(days=6)
            )
        ).all()
        stretches.append(now)
    return stretches


def _past_stretches(session: Session, first: date, last: date, zone: str) -> list[InForce]:
    """The days ``first`` .. ``last`` in stretches that share the plan version in force at their end."""
    made = sorted(
        (row.planning_day or local_day(row.created_at, zone), row.id)
        for row in session.execute(select(PlanVersion.id, PlanVersion.planning_day, PlanVersion.created_at))
    )
    days = [day for day, _ in made]
    latest: list[int] = []  # latest[i]: the newest version made on or before days[i]
    for _, version in made:
        latest.append(max(version, latest[-1]) if latest else version)
    stretches: list[InForce] = []
    day = first
    while day <= last:
        i = bisect_right(days, day) - 1
        version = latest[i] if i >= 0 else None
        if stretches and stretches[-1].version == version:
            stretches[-1].last_day = day
        else:
            stretches.append(InForce(day, day, version))
        day += timedelta(days=1)
    return stretches


def _fill_past(session: Session, stretches: list[InForce]) -> None:
    """Give each stretch (in day order, so versions never decrease) the bookings of its version."""
    if not stretches:
        return
    versions = [s.version for s in stretches]
    ends = [s.last_day for s in stretches]
    starts = [s.first_day - timedelta(days=6) for s in stretches]
    query = select(*BOOKED, BookingRow.from_version, BookingRow.to_version).where(
        BookingRow.from_version <= versions[-1],
        or_(BookingRow.to_version.is_(None), BookingRow.to_version > versions[0]),
        BookingRow.first_day <= ends[-1],
        BookingRow.last_day >= starts[0],
    )
    for row in session.execute(query.order_by(BookingRow.patient_id, BookingRow.first_day, BookingRow.id)):
        in_version = (
            bisect_left(versions, row.from_version),
            len(versions) if row.to_version is None else bisect_left(versions, row.to_version),
        )
        on_days = bisect_left(ends, row.first_day), bisect_right(starts, row.last_day)
        for i in range(max(in_version[0], on_days[0]), min(in_version[1], on_days[1])):
            stretches[i].bookings.append(row)


def all_changes(session: Session) -> list[CapacityChangeRow]:
    """Every capacity change ever entered, withdrawn ones too, oldest first."""
    return list(session.scalars(select(CapacityChangeRow).order_by(CapacityChangeRow.id)))


def changes_in_force(changes: list[CapacityChangeRow], day: date, zone: str) -> list[CapacityChangeRow]:
    """Of ``changes``, those in force at the end of ``day``: entered on or before it (one entered before
    planning days were stored counts as always in force) and not withdrawn by then."""

    def withdrawn_by(change: CapacityChangeRow) -> bool:
        if change.withdrawn_on is not None:
            return change.withdrawn_on <= day
        return change.withdrawn_at is not None and local_day(change.withdrawn_at, zone) <= day

    return [c for c in changes if (c.created_on is None or c.created_on <= day) and not withdrawn_by(c)]
