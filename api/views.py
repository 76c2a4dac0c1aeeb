"""Read side: what the API and pages show. Plain queries, no writes."""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from api import state
from api.db import (
    AuditEntry,
    BookingRow,
    CapacityChangeRow,
    CustodyEvent,
    EventRow,
    PatientRow,
    PlanVersion,
    ProductRow,
    ProposalRow,
    SolverRun,
    StepRecord,
)
from api.settings import Settings
from api.state import NotFound
from pathway import custody, isbt
from pathway.catalogue import Catalogue, StepKind
from pathway.site import Resource, Site
from pathway.usage import Load, Use, resource_load
from solver.explain import explain_patient

MAX_RANGE_DAYS = 366


# -- the service ---------------------------------------------------------------------------------
def health(session: Session, settings: Settings) -> dict[str, Any]:
    """Up, the current plan version, and the planning day."""
    version = state.current_version(session)
    return {
        "status": "ok",
        "plan_version": version.id if version else None,
        "today": settings.planning_day().isoformat(),
    }


# -- patients -----------------------------------------------------------------------------------
def patient_view(session: Session, patient_id: str) -> dict[str, Any]:
    return _referral(state.get_patient(session, patient_id))


def _referral(row: PatientRow) -> dict[str, Any]:
    return state.patient_fields(row) | {"status": row.status, "nhs_number_recorded": row.nhs_number is not None}


PAGE_LIMIT = 50  # patients per page of GET /patients, unless the client asks for another size
MAX_PAGE_LIMIT = 200


def patients(
    session: Session,
    today: date,
    limit: int = PAGE_LIMIT,
    after: str | None = None,
    status: str | None = None,
    pathway: str | None = None,
    centre: str | None = None,
    prefix: str | None = None,
) -> dict[str, Any]:
    """One page of referrals, by id, filtered in the database: at most ``limit`` patients whose id
    comes after ``after`` (the keyset cursor), how many match in all, and the cursor of the next page.

    The same queries whatever the page size: the count, the page's rows, the page's current bookings
    (for each patient's next step and infusion day)."""
    matching = []
    if status:
        matching.append(PatientRow.status == status)
    if pathway:
        matching.append(PatientRow.pathway == pathway)
    if centre:
        matching.append(PatientRow.centre == centre)
    if prefix:  # ids are case-sensitive, a search box is not; _ and % are literal characters here
        matching.append(func.lower(PatientRow.id).startswith(prefix.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(PatientRow).where(*matching))
    query = select(PatientRow).where(*matching).order_by(PatientRow.id).limit(limit + 1)
    if after is not None:
        query = query.where(PatientRow.id > after)
    rows = session.scalars(query).all()
    page, more = rows[:limit], len(rows) > limit
    booked: dict[str, list[BookingRow]] = defaultdict(list)
    if page:
        current = select(BookingRow).where(
            BookingRow.to_version.is_(None), BookingRow.patient_id.in_([row.id for row in page])
        )
        for b in session.scalars(current.order_by(BookingRow.first_day, BookingRow.id)):
            booked[b.patient_id].append(b)
    cat = state.catalogue(session)
    return {
        "patients": [_listed(row, booked[row.id], cat, today) for row in page],
        "total": total,
        "next_after": page[-1].id if more else None,
    }


def _listed(row: PatientRow, bookings: list[BookingRow], cat: Catalogue, today: date) -> dict[str, Any]:
    """A patient as the list shows them: the referral, the first booking not yet over, the infusion day."""
    ahead = next((b for b in bookings if b.last_day >= today), None)  # bookings come by first day
    kinds = _step_kinds(cat, row.pathway)
    infusions = [b.first_day for b in bookings if kinds.get(b.step) == StepKind.infusion]
    return _referral(row) | {
        "next_step": None if ahead is None else _next_step(ahead),
        "infusion": min(infusions).isoformat() if infusions else None,
    }


def _step_kinds(cat: Catalogue, pathway: str) -> dict[str, StepKind]:
    try:
        return {s.name: s.kind for s in cat.template(pathway).steps}
    except KeyError:  # a pathway since removed from the catalogue: its steps' kinds are unknown
        return {}


def _next_step(b: BookingRow) -> dict[str, Any]:
    return {
        "step": b.step,
        "first_day": b.first_day.isoformat(),
        "last_day": b.last_day.isoformat(),
        "status": b.status,
    }


def proposal_view(row: ProposalRow, reason: str = "") -> dict[str, Any]:
    return {
        "id": row.id,
        "patient": row.patient_id,
        "base_version": row.base_version,
        "status": row.status,
        "options": row.options,
        "reason": reason,
    }


def proposal(session: Session, proposal_id: str) -> dict[str, Any]:
    row = session.get(ProposalRow, proposal_id)
    if row is None:
        raise NotFound(f"no proposal {proposal_id!r}")
    return proposal_view(row)


def timeline(session: Session, patient_id: str, settings: Settings) -> dict[str, Any]:
    """Every step of the patient's pathway: dates, status and what fixed each date; then the events."""
    row = state.get_patient(session, patient_id)
    today = settings.planning_day()
    template = state.catalogue(session).template(row.pathway)
    booked = {b.step: b for b in state.current_rows(session, patient_id)}
    version = state.current_version(session)
    unschedulable = next((u for u in (version.unschedulable if version else []) if u["patient"] == patient_id), None)
    reasons: dict[str, list[str]] = {}
    if booked and row.status != "withdrawn":
        problem = state.build_problem(session, today, settings.horizon_days)
        explanation = explain_patient(problem, state.current_plan(session), patient_id)
        reasons = {s.step: s.reasons for s in explanation.steps}
    records = state.latest_records(session, {patient_id})
    unbooked = _latest_by_step(session, patient_id)
    products = product_views(session, patient_id)
    awaited = any(p["state"]["awaited"] for p in products)
    infused = any(
        s.kind == StepKind.infusion and _recorded(records, booked.get(s.name)) == "done" for s in template.steps
    )
    history = {b.id for b in state.history_rows(session, {patient_id})}
    steps = []
    for step in template.steps:
        b = booked.get(step.name)
        if b is not None and b.id in history:  # kept as history by a withdrawal or a restart: it has ended
            record = unbooked.get(step.name)
            status = "done" if record is not None and record.outcome == "done" else "ended"
        else:
            record = records.get(b.id) if b is not None else unbooked.get(step.name)
            status = step_status(step.kind, b, record, today, awaited, infused)
        steps.append(
            {
                "step": step.name,
                "kind": step.kind.value,
                "first_day": b.first_day.isoformat() if b else None,
                "last_day": b.last_day.isoformat() if b else None,
                "status": status,
                "fixed_by": b.fixed_by if b else "",
                "why": reasons.get(step.name, []),
                "recorded": record_view(record) if record is not None else None,
            }
        )
    events = session.scalars(select(EventRow).where(EventRow.patient_id == patient_id).order_by(EventRow.id))
    return {
        "patient": patient_id,
        "pathway": row.pathway,
        "status": row.status,
        "unschedulable": unschedulable,
        "steps": steps,
        "records": [record_view(r) | {"step": r.step} for r in _all_records(session, patient_id)],
        "products": products,
        "events": [
            {"at": e.created_at.isoformat(), "kind": e.kind, "details": e.details, "by": e.created_by} for e in events
        ],
    }


def moved_since_confirmation(session: Session, patient_ids: set[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per patient (of ``patient_ids``, default all) who is not withdrawn: the ``moved`` events after
    their latest ``confirmation`` event (all of them if there is none), oldest first; patients with
    none are left out. What a coordinator still has to tell each patient, for the worklist. One query."""
    confirmed = (
        select(EventRow.patient_id, func.max(EventRow.id).label("latest"))
        .where(EventRow.kind == "confirmation")
        .group_by(EventRow.patient_id)
        .subquery()
    )
    query = (
        select(EventRow)
        .join(PatientRow, PatientRow.id == EventRow.patient_id)
        .outerjoin(confirmed, confirmed.c.patient_id == EventRow.patient_id)
        .where(
            EventRow.kind == "moved",
            PatientRow.status != "withdrawn",
            or_(confirmed.c.latest.is_(None), EventRow.id > confirmed.c.latest),
        )
    )
    if patient_ids is not None:
        query = query.where(EventRow.patient_id.in_(sorted(patient_ids)))
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in session.scalars(query.order_by(EventRow.id)):
        out[event.patient_id].append(_event_view(event))
    return dict(out)


def _event_view(event: EventRow) -> dict[str, Any]:
    return {"at": event.created_at.isoformat(), "kind": event.kind, "details": event.details, "by": event.created_by}


def step_status(
    kind: StepKind, booking: BookingRow | None, record: StepRecord | None, today: date, awaited: bool, infused: bool
) -> str:
    """What the records say of a step: done, in progress, missed or cancelled; with no record, a booked
    step is due (starts today) or overdue (its first day has passed: never assumed done), else planned or
    confirmed. A product's steps are in progress while its product is awaited; the high-risk window
    after an infusion follows the recorded infusion."""
    if record is not None and (booking is None or record.booking_id == booking.id):
        return {"started": "in progress", "done": "done", "missed": "missed", "cancelled": "cancelled"}[record.outcome]
    if booking is None:
        return "not booked"
    if booking.first_day > today:
        return booking.status
    if kind == StepKind.monitoring:
        if not infused:
            return "overdue" if booking.first_day < today else "due"
        return "done" if booking.last_day < today else "in progress"
    if kind in state.PRODUCT_KINDS and awaited:
        return "in progress"
    return "overdue" if booking.first_day < today else "due"


def _recorded(records: dict[int, StepRecord], booking: BookingRow | None) -> str | None:
    record = records.get(booking.id) if booking is not None else None
    return record.outcome if record is not None else None


def _all_records(session: Session, patient_id: str) -> list[StepRecord]:
    query = select(StepRecord).where(StepRecord.patient_id == patient_id).order_by(StepRecord.id)
    return list(session.scalars(query))


def _latest_by_step(session: Session, patient_id: str) -> dict[str, StepRecord]:
    """Step -> its latest record, for steps whose booking has gone (missed, cancelled)."""
    return {r.step: r for r in _all_records(session, patient_id)}


def record_view(record: StepRecord) -> dict[str, Any]:
    return {
        "outcome": record.outcome,
        "first_day": record.first_day.isoformat() if record.first_day else None,
        "last_day": record.last_day.isoformat() if record.last_day else None,
        "reason": record.reason,
        "note": record.note,
        "recorded_on": record.recorded_on.isoformat(),
        "by": record.recorded_by,
    }


# -- products -----------------------------------------------------------------------------------
def product(session: Session, product_id: int) -> dict[str, Any]:
    row = session.get(ProductRow, product_id)
    if row is None:
        raise NotFound(f"no product {product_id}")
    return _product_view(session, row)


def product_views(session: Session, patient_id: str) -> list[dict[str, Any]]:
    query = select(ProductRow).where(ProductRow.patient_id == patient_id).order_by(ProductRow.id)
    return [_product_view(session, row) for row in session.scalars(query)]


def _custody(session: Session, product_id: int) -> list[CustodyEvent]:
    query = select(CustodyEvent).where(CustodyEvent.product_id == product_id).order_by(CustodyEvent.id)
    return list(session.scalars(query))


def product_state(events: list[CustodyEvent]) -> custody.ProductState:
    return custody.product_state([custody.CustodyStep(custody.CustodyKind(e.kind), e.day, e.details) for e in events])


def _product_view(session: Session, row: ProductRow, events: list[CustodyEvent] | None = None) -> dict[str, Any]:
    events = _custody(session, row.id) if events is None else events
    now = product_state(events)
    return {
        "id": row.id,
        "patient": row.patient_id,
        "collection_step": row.collection_step,
        "din": str(isbt.Din(row.din, row.din_check)) if row.din else None,
        "product_code": row.product_code,
        "chain_of_identity": row.chain_of_identity,
        "order_reference": row.order_reference,
        "bags": row.bags,
        "state": {
            "last": now.last.value if now.last else None,
            "awaited": now.awaited,
            "released_on": _iso(now.released_on),
            "expected_on": _iso(now.expected_on),
            "out_of_specification": now.out_of_specification,
            "exceptional": now.exceptional,
            "lost": now.lost,
            "infused": now.infused,
            "summary": now.describe(),
        },
        "custody": [
            {
                "kind": e.kind,
                "day": e.day.isoformat(),
                "details": e.details,
                "recorded_on": e.recorded_on.isoformat(),
                "by": e.recorded_by,
            }
            for e in events
        ],
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


# -- capacity -----------------------------------------------------------------------------------
def capacity_table(
    session: Session, first: date, last: date, settings: Settings, resource: str | None = None
) -> dict[str, Any]:
    """Per resource and day (weekly resources: per week) in [first, last]: capacity, booked, free,
    utilisation and the patients behind the bookings; a summary of the busiest days and the bottleneck.

    A day before today (a week that has ended) is shown as it stood at its end: the bookings of the
    plan version then in force and the capacity changes then in force (``CapacityThen``), so nothing
    done later rewrites it. From today on: the current plan and capacity."""
    then = CapacityThen(session, first, last, settings)
    site = then.problem.site
    resources = [r for r in site.resources if resource is None or r.id == resource or r.kind == resource]
    if resource is not None and not resources:
        raise NotFound(f"no resource {resource!r} (known: {', '.join(r.id for r in site.resources)})")
    cells = []
    for r in resources:
        for day in _cells_of(r, first, last):
            uses, site_then = then.cell(r, day)
            capacity = site_then.capacity_on(r, day)
            booked = sum(u.amount for u in uses)
            cells.append(
                {
                    "resource": r.id,
                    "period": r.period,
                    "day": day.isoformat(),
                    "capacity": capacity,
                    "booked": booked,
                    "free": capacity - booked,
                    "utilisation": round(booked / capacity, 3) if capacity else None,
                    "note": site_then.capacity_reason(r, day) or "",
                    "patients": [{"patient": u.patient, "step": u.step, "amount": u.amount} for u in uses],
                }
            )
    return {"first_day": first.isoformat(), "last_day": last.isoformat(), "cells": cells, "summary": _summary(cells)}


class CapacityThen:
    """The load and capacity of each cell of a capacity view as it stood at the cell's end (a past
    day or week), or as it stands now (today on). Loads are worked out once per stretch of days
    that share a plan version (``state.bookings_in_force``), sites once per set of changes in force."""

    def __init__(self, session: Session, first: date, last: date, settings: Settings):
        self.today = settings.planning_day()
        self.zone = settings.nightly_timezone
        # a week is judged at its Sunday, which may come after ``last``
        self.stretches = state.bookings_in_force(session, first, last + timedelta(days=6), self.today, self.zone)
        patients = {b.patient_id for s in self.stretches for b in s.bookings}
        self.problem = state.usage_problem(session, self.today, settings.horizon_days, patients)
        self.base = state.base_site(session)
        self.changes = state.all_changes(session)
        self.starts = [s.first_day for s in self.stretches]
        self.loads: dict[int, Load] = {}
        self.sites: dict[tuple[int, ...], Site] = {}

    def cell(self, resource: Resource, day: date) -> tuple[list[Use], Site]:
        """The uses booked in ``resource``'s cell ``day`` and the site (capacity) in force, at the cell's end."""
        end = resource.cell_days(day)[1]
        i = bisect_right(self.starts, end) - 1
        if i not in self.loads:
            self.loads[i] = resource_load(self.problem, [state.as_booking(b) for b in self.stretches[i].bookings])
        return self.loads[i].cells.get((resource.id, day), []), self._site_on(end)

    def _site_on(self, day: date) -> Site:
        if day >= self.today:
            return self.problem.site
        changes = state.changes_in_force(self.changes, day, self.zone)
        key = tuple(c.id for c in changes)
        if key not in self.sites:
            self.sites[key] = state.site_with(self.base, changes)
        return self.sites[key]


def _cells_of(resource: Resource, first: date, last: date) -> list[date]:
    """The resource's cells (days, or the Mondays of ISO weeks) from ``first`` to ``last``."""
    step = 7 if resource.weekly else 1
    start = resource.cell(first)
    return [start + timedelta(days=step * i) for i in range((last - start).days // step + 1)]


def _summary(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The busiest resource-days and the resource with the highest mean utilisation."""

    def level(c):
        return c["booked"] / c["capacity"] if c["capacity"] else (10.0 if c["booked"] else 0.0)

    busiest = sorted((c for c in cells if c["booked"]), key=lambda c: (-level(c), c["day"], c["resource"]))[:10]
    by_resource: dict[str, list[float]] = defaultdict(list)
    overbooked = []
    for c in cells:
        if c["capacity"]:  # a closed day has no utilisation (its bookings show as overbooked)
            by_resource[c["resource"]].append(level(c))
        if c["booked"] > c["capacity"]:
            overbooked.append(
                {"resource": c["resource"], "day": c["day"], "booked": c["booked"], "capacity": c["capacity"]}
            )
    means = {rid: sum(v) / len(v) for rid, v in by_resource.items() if v}
    bottleneck = max(means, key=lambda rid: (means[rid], rid), default=None)
    return {
        "busiest": [
            {"resource": c["resource"], "day": c["day"], "booked": c["booked"], "capacity": c["capacity"]}
            for c in busiest
        ],
        "bottleneck": {"resource": bottleneck, "mean_utilisation": round(means[bottleneck], 3)} if bottleneck else None,
        "mean_utilisation": {rid: round(v, 3) for rid, v in sorted(means.items())},
        "overbooked": overbooked,
    }


# A text cell starting with one of these is read as a formula by spreadsheets (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet will show as text: one starting like a formula gets a leading quote.
    Numbers are left alone (a negative ``free`` is a number, not a formula)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def capacity_csv(table: dict[str, Any]) -> str:
    """The capacity table as CSV, every text cell made spreadsheet-safe (closure notes are free text)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: a CR or LF inside a cell is then quoted
    writer.writerow(["day", "resource", "period", "capacity", "booked", "free", "utilisation", "note", "patients"])
    for c in table["cells"]:
        who = " ".join(
            f"{p['patient']}:{p['step']}" + (f"x{p['amount']}" if p["amount"] != 1 else "") for p in c["patients"]
        )
        util = "" if c["utilisation"] is None else c["utilisation"]
        row = [c["day"], c["resource"], c["period"], c["capacity"], c["booked"], c["free"], util, c["note"], who]
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()


def capacity_changes(session: Session) -> list[dict[str, Any]]:
    """The active closures and capacity changes, oldest first."""
    return [change_view(c) | {"created_by": c.created_by} for c in state.active_changes(session)]


def change_view(row: CapacityChangeRow) -> dict[str, Any]:
    return state.change_dict(row) | {"id": row.id}


# -- plans --------------------------------------------------------------------------------------
def version_view(session: Session, version: PlanVersion) -> dict[str, Any]:
    run = session.get(SolverRun, version.solver_run_id) if version.solver_run_id else None
    return {
        "id": version.id,
        "parent": version.parent_id,
        "kind": version.kind,
        "reason": version.reason,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "planning_day": version.planning_day.isoformat() if version.planning_day else None,
        "current": state.head(session).version_id == version.id,
        "unschedulable": version.unschedulable,
        "solver": {"status": run.status, "stats": run.stats} if run else None,
    }


def plan_view(session: Session, version_id: int | None = None) -> dict[str, Any]:
    """Plan version ``version_id`` (default: the current one) with its bookings."""
    if version_id is None:
        version = state.current_version(session)
        if version is None:
            raise NotFound("no plan yet")
        bookings = state.current_rows(session)
    else:
        version = get_version(session, version_id)
        bookings = bookings_at(session, version_id)
    return version_view(session, version) | {"bookings": [booking_view(b) for b in bookings]}


def list_versions(session: Session, limit: int, offset: int) -> list[dict[str, Any]]:
    versions = session.scalars(select(PlanVersion).order_by(PlanVersion.id.desc()).limit(limit).offset(offset))
    return [version_view(session, v) for v in versions]


def get_version(session: Session, version_id: int) -> PlanVersion:
    version = session.get(PlanVersion, version_id)
    if version is None:
        raise NotFound(f"no plan version {version_id}")
    return version


def bookings_at(session: Session, version_id: int) -> list[BookingRow]:
    """The bookings that made up plan version ``version_id``."""
    get_version(session, version_id)
    query = select(BookingRow).where(
        BookingRow.from_version <= version_id,
        or_(BookingRow.to_version.is_(None), BookingRow.to_version > version_id),
    )
    return list(session.scalars(query.order_by(BookingRow.patient_id, BookingRow.first_day, BookingRow.id)))


def booking_view(b: BookingRow) -> dict[str, Any]:
    return {
        "patient": b.patient_id,
        "step": b.step,
        "first_day": b.first_day.isoformat(),
        "last_day": b.last_day.isoformat(),
        "status": b.status,
        "fixed_by": b.fixed_by,
    }


def diff(session: Session, old: int, new: int) -> dict[str, Any]:
    """Per patient: steps added, removed, or moved (from -> to) between two plan versions."""
    before = {(b.patient_id, b.step): b for b in bookings_at(session, old)}
    after = {(b.patient_id, b.step): b for b in bookings_at(session, new)}
    changes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is not None and b is not None and (a.first_day, a.last_day) == (b.first_day, b.last_day):
            continue
        change = "added" if a is None else "removed" if b is None else "moved"
        entry = {"step": key[1], "change": change}
        if a is not None:
            entry["from"] = {"first_day": a.first_day.isoformat(), "last_day": a.last_day.isoformat()}
        if b is not None:
            entry["to"] = {"first_day": b.first_day.isoformat(), "last_day": b.last_day.isoformat()}
            entry["why"] = b.fixed_by
        changes[key[0]].append(entry)
    unschedulable_new = {u["patient"]: u for u in get_version(session, new).unschedulable}
    patients = sorted(changes, key=lambda p: (p not in unschedulable_new, p))
    return {
        "from_version": old,
        "to_version": new,
        "unschedulable": [unschedulable_new[p] for p in sorted(unschedulable_new)],
        "patients": [{"patient": p, "changes": changes[p]} for p in patients],
        "bookings_moved": sum(1 for p in changes.values() for c in p if c["change"] == "moved"),
    }


# -- audit --------------------------------------------------------------------------------------
def audit(session: Session, limit: int, offset: int, entity: str | None, entity_id: str | None) -> list[dict[str, Any]]:
    query = select(AuditEntry)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "actor": r.actor,
            "role": r.role,
            "action": r.action,
            "entity": r.entity,
            "entity_id": r.entity_id,
            "before": r.before,
            "after": r.after,
        }
        for r in rows
    ]


# -- the worklist -------------------------------------------------------------------------------
NOT_RECORDED = (StepKind.monitoring,)
"""Steps nobody records (the high-risk window follows the infusion)."""


def worklist(session: Session, settings: Settings, role: str) -> dict[str, Any]:
    """What needs doing from today to the ``worklist_working_days``-th working day: the steps due, the
    steps overdue to record, the products awaited, the conditionings at risk (product not released)
    and, for coordinators, the patients moved since their dates were last confirmed."""
    today = settings.planning_day()
    site = state.site(session)
    until = state.working_days_after(site, today, settings.worklist_working_days)
    risk_until = state.working_days_after(site, today, settings.at_risk_working_days)
    cat = state.catalogue(session)
    active = {r.id: r for r in session.scalars(select(PatientRow).where(PatientRow.status != "withdrawn"))}
    booked = [b for b in state.current_rows(session, planned=True) if b.patient_id in active]
    bookings = [b for b in booked if b.first_day <= risk_until]
    records = state.latest_records(session)  # the current plan's bookings are all the worklist reads
    products: dict[str, list[dict[str, Any]]] = defaultdict(list)
    custody_of: dict[int, list[CustodyEvent]] = {}  # each product's chain, read once
    for row in session.scalars(select(ProductRow).where(ProductRow.patient_id.in_(sorted(active)))):
        custody_of[row.id] = _custody(session, row.id)
        products[row.patient_id].append(_product_view(session, row, custody_of[row.id]))
    mine = (lambda k: k in state.PRODUCT_KINDS) if role == "lab_manager" else (lambda k: k not in state.PRODUCT_KINDS)
    due, overdue, at_risk = [], [], []
    for b in bookings:
        kind = _step_kinds(cat, active[b.patient_id].pathway).get(b.step)
        if kind is None or b.id in records or kind in NOT_RECORDED:
            continue
        awaited = any(p["state"]["awaited"] for p in products[b.patient_id])
        if kind == StepKind.conditioning:
            states = [product_state(custody_of[p.id]) for p in state.current_products(session, b.patient_id)]
            gate = custody.conditioning_gate(cat.template(active[b.patient_id].pathway), states)
            if gate:
                at_risk.append(_at_risk(b, gate, products[b.patient_id]))
        if not mine(kind) or b.first_day > until or (kind in state.PRODUCT_KINDS and awaited):
            continue
        (overdue if b.first_day < today else due).append(_work_item(b, kind))
    awaited = [
        p | {"next_step": _next_product_step(booked, p["patient"], cat, active)}
        for rows in products.values()
        for p in rows
        if p["state"]["awaited"]
    ]
    out = {
        "role": role,
        "today": today.isoformat(),
        "until": until.isoformat(),
        "due": sorted(due, key=lambda i: (i["first_day"], i["patient"])),
        "overdue": sorted(overdue, key=lambda i: (i["first_day"], i["patient"])),
        "products_awaited": sorted(awaited, key=lambda p: (p["state"]["expected_on"] or "9999", p["patient"])),
        "at_risk": sorted(at_risk, key=lambda i: (i["first_day"], i["patient"])),
        "moved": []
        if role == "lab_manager"
        else [
            {"patient": patient, "moves": events}
            for patient, events in sorted(moved_since_confirmation(session).items())
        ],
    }
    return out


def _work_item(b: BookingRow, kind: StepKind) -> dict[str, Any]:
    return {
        "patient": b.patient_id,
        "step": b.step,
        "kind": kind.value,
        "first_day": b.first_day.isoformat(),
        "last_day": b.last_day.isoformat(),
        "booking_status": b.status,
    }


def _at_risk(b: BookingRow, why: str, products: list[dict[str, Any]]) -> dict[str, Any]:
    """A conditioning booked soon that the release gate would refuse today, and why."""
    expected = [p["state"]["expected_on"] for p in products if p["state"]["expected_on"]]
    return {
        "patient": b.patient_id,
        "step": b.step,
        "first_day": b.first_day.isoformat(),
        "why": why,
        "expected_on": max(expected) if expected else None,
    }


def _next_product_step(
    bookings: list[BookingRow], patient_id: str, cat: Catalogue, active: dict[str, PatientRow]
) -> dict[str, Any] | None:
    """The patient's release booking, which the awaited product is planned to meet."""
    kinds = _step_kinds(cat, active[patient_id].pathway)
    for b in bookings:
        if b.patient_id == patient_id and kinds.get(b.step) == StepKind.release:
            return {"step": b.step, "first_day": b.first_day.isoformat()}
    return None
