"""Use cases: each one runs inside one unit of work (``api.unit_of_work``), called by the
workflows of the HTTP routes, the CLI and the nightly job.

Every write is audited (who, what, before, after). A use case that writes the plan
runs in a planning write, which holds the plan lock from its start, and checks
against what is current *inside* that transaction, so a stale proposal or a double
booking is refused with a Conflict naming the resource and day, and nothing is
half-written. ``work.head`` (or ``work.planning()``) refuses to run it anywhere else.

Solves never run inside a transaction: a use case reads what it needs, the
solver works on plain domain objects, and the result is written in a new
transaction that checks nothing moved underneath it (``api.replanning``).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import state
from api.audit import Actor, record
from api.db import (
    BookingRow,
    CapacityChangeRow,
    CatalogueVersion,
    EventRow,
    PatientRow,
    PlanVersion,
    ProposalRow,
    SolverRun,
    utcnow,
)
from api.replanning import Publication, StalePlan
from api.settings import Settings
from api.state import Conflict, NotFound
from api.unit_of_work import UnitOfWork
from pathway.catalogue import REMANUFACTURE, Catalogue, StepKind, read_data_file, remanufacture_variant
from pathway.cohort import SITES_DIR, Problem, parse_cohort
from pathway.dates import say_day
from pathway.errors import InputError, validation_error
from pathway.nhs import SCREENED, first_mention
from pathway.plan import Booking, Plan
from pathway.rules import check_plan
from pathway.site import CapacityChange, Site
from pathway.usage import resource_load

REFERRAL_FIELDS = (
    "centre",
    "pathway",
    "approval_date",
    "earliest_start",
    "urgency",
    "target_infusion_date",
    "last_doses",
    "blackouts",
    "durations",
)


# -- catalogue ----------------------------------------------------------------------------------
def load_catalogue_files(session: Session, settings: Settings, actor: Actor) -> None:
    """Put the catalogue and site files into an empty database (no-op when they are there)."""
    have = {k for (k,) in session.execute(select(CatalogueVersion.kind).distinct())}
    if "pathways" not in have:
        body = Catalogue.model_validate(read_data_file(settings.catalogue_file)).model_dump(mode="json")
        session.add(CatalogueVersion(kind="pathways", body=body, created_by=actor.name))
        record(session, actor, "catalogue.load", "catalogue", "pathways", None, {"file": str(settings.catalogue_file)})
    if "site" not in have:
        path = SITES_DIR / f"{settings.site}.yaml"
        if not path.exists():
            raise InputError("settings", "site", f"no site file {path}")
        body = Site.model_validate(read_data_file(path)).model_dump(mode="json")
        session.add(CatalogueVersion(kind="site", body=body, created_by=actor.name))
        record(session, actor, "catalogue.load", "catalogue", "site", None, {"file": str(path)})


def start_empty_plan(work: UnitOfWork, actor: Actor, today: date) -> None:
    """A new installation's empty plan version, to propose against from the start (no-op when there is a plan)."""
    if work.head.version_id is None:
        new_version(work.session, work.head, "init", "empty plan of a new installation", actor, today)


def replace_catalogue(
    work: UnitOfWork, kind: str, body: dict[str, Any], today: date, horizon_days: int, actor: Actor
) -> int:
    """A new catalogue or site version. Refused (nothing stored) if a stored patient no longer
    resolves, or if the current plan would break a rule it does not break today."""
    model = Catalogue if kind == "pathways" else Site
    mention = first_mention(body)
    if mention:  # a catalogue version is kept for ever: it must not carry a patient's number
        raise InputError("", f"body.{mention}".removesuffix(".body"), SCREENED)
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(kind, exc) from None
    session = work.planning()
    if kind == "pathways":
        known = {t.id for t in parsed.with_remanufacture().templates}
        used = set(session.scalars(select(PatientRow.pathway).distinct()))
        if used - known:
            raise Conflict(
                f"stored patients use pathway(s) {', '.join(sorted(used - known))}, missing from the new catalogue"
            )
    before = _plan_violations(session, today, horizon_days)
    previous = state.latest(session, kind)
    row = CatalogueVersion(kind=kind, body=parsed.model_dump(mode="json"), created_by=actor.name)
    session.add(row)
    session.flush()
    new = [v for v in _plan_violations(session, today, horizon_days) if v not in before]
    if new:
        raise Conflict(f"the current plan would break {len(new)} rule(s) under the new {kind}: " + " ".join(new[:3]))
    record(session, actor, "catalogue.replace", "catalogue", kind, {"version": previous.id}, {"version": row.id})
    return row.id


def _plan_violations(session: Session, today: date, horizon_days: int) -> list[str]:
    """The checker's messages for the current plan of every active patient."""
    plan = state.current_plan(session)
    problem = state.build_problem(session, today, horizon_days)
    return [v.message for v in check_plan(problem, plan)]


# -- referrals ----------------------------------------------------------------------------------
def _validate_patient(session: Session, fields: dict[str, Any], today: date, horizon_days: int) -> None:
    """Resolve the referral against the catalogue and site; InputError names the field."""
    raw = {
        "name": "referral",
        "site": state.site(session),
        "horizon": {"start": today.isoformat(), "days": horizon_days},
        "patients": [fields],
    }
    try:
        # the re-manufacture variants only for a patient already on one (the error lists what can be chosen)
        variants = str(fields.get("pathway", "")).endswith(REMANUFACTURE)
        parse_cohort(raw, source="", catalogue=state.catalogue(session, variants=variants))
    except InputError as exc:
        field = exc.field.removeprefix("patients[0].").removeprefix("patients[0]")
        raise InputError("", field, exc.problem) from None


def _snapshot(row: PatientRow) -> dict[str, Any]:
    out = state.patient_fields(row)
    out["status"] = row.status
    out["nhs_number"] = row.nhs_number
    return out


def register_referral(
    work: UnitOfWork, fields: dict[str, Any], nhs_number: str | None, settings: Settings, actor: Actor
) -> PatientRow:
    session = work.planning()
    if fields["pathway"].endswith(REMANUFACTURE):
        raise InputError(
            "", "pathway", "a re-manufacture variant is reached through out-of-specification, not at referral"
        )
    if session.get(PatientRow, fields["id"]) is not None:
        raise Conflict(f"patient {fields['id']!r} exists already")
    if nhs_number and _nhs_holder(session, nhs_number, fields["id"]):
        raise Conflict("another referral has this NHS number")
    _validate_patient(session, fields, settings.planning_day(), settings.horizon_days)
    row = PatientRow(**_row_values(fields), id=fields["id"], nhs_number=nhs_number, status="referred")
    session.add(row)
    session.flush()
    session.add(EventRow(patient_id=row.id, kind="referral", details={}, created_by=actor.name))
    record(session, actor, "patient.register", "patient", row.id, None, _snapshot(row))
    return row


def _nhs_holder(session: Session, nhs_number: str, other_than: str) -> str | None:
    """The referral other than ``other_than``, not withdrawn, that has this NHS number (at most one:
    the partial unique index ``uq_patients_active_nhs_number``); a withdrawn patient's number is free."""
    query = select(PatientRow.id).where(
        PatientRow.nhs_number == nhs_number, PatientRow.status != "withdrawn", PatientRow.id != other_than
    )
    return session.scalars(query).first()


def _row_values(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name in REFERRAL_FIELDS:
        value = fields.get(name)
        if name in ("approval_date", "earliest_start", "target_infusion_date") and isinstance(value, str):
            value = date.fromisoformat(value)
        if name in ("last_doses", "durations"):
            value = dict(value or {})
        if name == "blackouts":
            value = [dict(b) for b in value or []]
        out[name] = value
    return out


def edit_referral(
    work: UnitOfWork,
    patient_id: str,
    changes: dict[str, Any],
    nhs_number: str | None | object,
    settings: Settings,
    actor: Actor,
) -> list[str]:
    """Apply ``changes``; returns the rules the patient's current bookings now break, if any."""
    session = work.planning()
    row = state.refuse_withdrawn(state.get_patient(session, patient_id))
    before = _snapshot(row)
    fields = state.patient_fields(row) | changes
    if fields["pathway"] != row.pathway and state.current_rows(session, patient_id):
        raise Conflict("the pathway of a patient with bookings cannot change: withdraw the bookings first (reschedule)")
    _validate_patient(session, fields, settings.planning_day(), settings.horizon_days)
    for name, value in _row_values(fields).items():
        setattr(row, name, value)
    if nhs_number is not _UNCHANGED:
        if nhs_number and _nhs_holder(session, nhs_number, patient_id):
            raise Conflict("another referral has this NHS number")
        row.nhs_number = nhs_number
    row.updated_at = utcnow()
    session.flush()
    record(session, actor, "patient.edit", "patient", patient_id, before, _snapshot(row))
    return patient_violations(session, patient_id, settings)


_UNCHANGED = object()
UNCHANGED = _UNCHANGED


def patient_violations(session: Session, patient_id: str, settings: Settings) -> list[str]:
    """The hard rules the patient's current bookings break (capacity judged on the whole site)."""
    rows = state.current_rows(session, patient_id, planned=True)
    if not rows:
        return []
    today = settings.planning_day()
    problem = state.build_problem(session, today, settings.horizon_days, include={patient_id})
    plan = Plan(cohort="site", method="current", bookings=tuple(state.as_booking(b) for b in rows))
    return [v.message for v in check_plan(problem, plan) if v.rule != "CAPACITY"]


# -- proposals ----------------------------------------------------------------------------------
@dataclasses.dataclass
class ProposeInput:
    """What a proposal is computed from, read in one short transaction."""

    problem: Problem
    current: Plan
    movable: set[str]
    base_version: int
    movable_from: date


def propose_input(session: Session, patient_id: str, settings: Settings) -> ProposeInput:
    state.refuse_withdrawn(state.get_patient(session, patient_id))
    today = settings.planning_day()
    site = state.site(session)
    freeze = state.working_days_after(site, today, settings.freeze_working_days)
    # the patient's own bookings that have not started are open to the proposal
    problem = state.build_problem(session, today, settings.horizon_days, freeze_until=freeze, reopened={patient_id})
    current = state.current_plan(session)
    current = current.model_copy(update={"bookings": tuple(b for b in current.bookings if b.patient != patient_id)})
    movable = {b.patient for b in current.bookings}
    version = state.current_version(session)
    if version is None:
        raise Conflict("the database has no plan yet: run `v2v db init`")
    return ProposeInput(problem, current, movable, version.id, freeze + timedelta(days=1))


def warm_up() -> None:
    """Ready a server process: import the solver (about half a second, once per process) before a request
    needs it; then, those imports being long-lived, freeze them out of the collector's work and collect
    less often (a full collection cost ~75 ms per request tail)."""
    for module in ("solver.propose", "solver.solve"):
        importlib.import_module(module)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def run_propose(data: ProposeInput, patient_id: str, settings: Settings):
    """The solver part of a proposal (runs in the solver executor, no database)."""
    from solver.propose import propose

    return propose(
        data.problem,
        patient_id,
        data.current,
        movable=data.movable,
        alternatives=settings.alternatives,
        time_limit=settings.propose_time_limit,
        max_slip_days=settings.alternative_max_slip_days,
        movable_from=data.movable_from,
    )


def option_dict(option, rank: int, kind: str) -> dict[str, Any]:
    return {
        "rank": rank,
        "kind": kind,
        "infusion": option.infusion.isoformat(),
        "bookings": [b.model_dump(mode="json") for b in option.bookings],
        "moves": [
            {
                "patient": m.patient,
                "step": m.step,
                "from_first_day": m.from_first_day.isoformat(),
                "from_last_day": m.from_last_day.isoformat(),
                "to_first_day": m.to_first_day.isoformat(),
                "to_last_day": m.to_last_day.isoformat(),
            }
            for m in option.moves
        ],
        "cost": option.cost,
        "disruption_days": option.disruption,
    }


def store_proposal(work: UnitOfWork, patient_id: str, data: ProposeInput, proposal, actor: Actor) -> ProposalRow:
    session = work.session
    state.get_patient(session, patient_id)
    options = []
    if proposal.fast is not None:
        options.append(option_dict(proposal.fast, 0, "fast"))
    for alternative in proposal.alternatives:
        options.append(option_dict(alternative, len(options), "alternative"))
    row = ProposalRow(
        id=uuid.uuid4().hex,
        patient_id=patient_id,
        base_version=data.base_version,
        options=options,
        created_by=actor.name,
    )
    session.add(row)
    session.flush()
    record(
        session, actor, "proposal.create", "proposal", row.id, None, {"patient": patient_id, "options": len(options)}
    )
    return row


def confirm(work: UnitOfWork, proposal_id: str, rank: int, settings: Settings, actor: Actor) -> PlanVersion:
    """Commit one option of a proposal: every booking (and every move) or none. The patient gets a
    ``confirmation`` event, each patient it moves a ``moved`` one."""
    session, head = work.session, work.head
    proposal = session.get(ProposalRow, proposal_id)
    if proposal is None:
        raise NotFound(f"no proposal {proposal_id!r}")
    patient = state.refuse_withdrawn(state.get_patient(session, proposal.patient_id))
    if proposal.status != "open":
        raise Conflict(f"proposal {proposal_id} is {proposal.status}; ask for a new proposal")
    option = next((o for o in proposal.options if o["rank"] == rank), None)
    if option is None:
        raise NotFound(f"proposal {proposal_id} has no option {rank} (it has {len(proposal.options)})")
    today = settings.planning_day()

    current = state.current_rows(session, planned=True)
    records = state.latest_records(session)
    by_key = {(b.patient_id, b.step): b for b in current}
    released: list[BookingRow] = [
        b for b in current if b.patient_id == patient.id and not state.under_way(b, today, records)
    ]
    new: list[tuple[Booking, str, str]] = []  # (booking, status, fixed_by)
    for m in option["moves"]:
        old = by_key.get((m["patient"], m["step"]))
        if old is None or old.first_day.isoformat() != m["from_first_day"]:
            raise Conflict(
                f"the proposal is stale: {m['patient']}'s {m['step']} is no longer booked on {m['from_first_day']}; "
                "ask for a new proposal"
            )
        if state.under_way(old, today, records):
            raise Conflict(f"the proposal is stale: {m['patient']}'s {m['step']} has started")
        released.append(old)
        moved = Booking(patient=m["patient"], step=m["step"], first_day=m["to_first_day"], last_day=m["to_last_day"])
        new.append((moved, "planned", f"moved by {actor.name} to make room for {patient.id} (proposal {proposal.id})"))
    history = {b.step: b for b in state.history_rows(session, {patient.id})}
    for b in option["bookings"]:
        again = history.pop(b["step"], None)  # a step booked again: its history leaves the plan
        if again is not None:
            released.append(again)
        kept = by_key.get((patient.id, b["step"]))
        if kept is not None and kept not in released:  # started (its day has passed, or it is recorded)
            if kept.first_day.isoformat() == b["first_day"]:
                continue  # it stays as it is
            raise Conflict(f"the proposal is stale: {b['step']} has started; ask for a new proposal")
        started = b["first_day"] < today.isoformat()
        if started and not _resumes(again, b):
            raise Conflict(
                f"the proposal is stale: {b['step']} on {b['first_day']} is in the past; ask for a new proposal"
            )
        if started and again is None:
            continue  # a step of the patient that has started stays as it is
        new.append((Booking.model_validate(b), "confirmed", f"confirmed by {actor.name} (proposal {proposal.id})"))

    keep = [state.as_booking(b) for b in current if b not in released]
    _check_new_bookings(session, settings, keep, [n for n, _, _ in new])

    version = new_version(session, head, "confirm", f"{patient.id}: proposal {proposal.id} option {rank}", actor, today)
    for b in released:
        b.to_version = version.id
    for booking, status, fixed_by in new:
        _add_booking(session, booking, status, fixed_by, version.id)
    version.unschedulable = [u for u in version.unschedulable if u["patient"] != patient.id]
    patient.status = "scheduled"
    proposal.status = "confirmed"
    supersede_proposals(session, patient.id)
    details = {"proposal": proposal.id, "option": rank, "plan_version": version.id, "infusion": option["infusion"]}
    session.add(EventRow(patient_id=patient.id, kind="confirmation", details=details, created_by=actor.name))
    session.flush()
    _record_moves(session, option["moves"], patient.id, proposal.id, version.id, actor)
    record(
        session,
        actor,
        "plan.confirm",
        "patient",
        patient.id,
        {"bookings": [_booking_json(b) for b in released]},
        {"version": version.id, "bookings": [n.model_dump(mode="json") for n, _, _ in new]},
    )
    return version


def _resumes(started: BookingRow | None, proposed: dict[str, Any]) -> bool:
    """Whether a proposed booking that starts in the past keeps a step that started on that day: one
    booked, or one a release kept as history that the pathway now resumes (held with a step done)."""
    return started is not None and started.first_day.isoformat() == proposed["first_day"]


def _add_booking(session: Session, booking: Booking, status: str, fixed_by: str, version_id: int) -> None:
    """A booking that is part of the plan from version ``version_id`` on."""
    session.add(
        BookingRow(
            patient_id=booking.patient,
            step=booking.step,
            first_day=booking.first_day,
            last_day=booking.last_day,
            status=status,
            fixed_by=fixed_by,
            from_version=version_id,
        )
    )


def _record_moves(
    session: Session, moves: list[dict[str, Any]], for_patient: str, proposal_id: str, version: int, actor: Actor
) -> None:
    """Each patient an alternative moved gets an event and an audit row, so their coordinator sees it."""
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in moves:
        by_patient[m["patient"]].append({k: v for k, v in m.items() if k != "patient"})
    for pid, steps in sorted(by_patient.items()):
        cause = f"moved to make room for {for_patient} (proposal {proposal_id})"
        details = {"for_patient": for_patient, "proposal": proposal_id}
        _tell_moved(session, pid, steps, cause, version, details, actor)


def _tell_moved(
    session: Session,
    patient_id: str,
    moves: list[dict[str, Any]],
    cause: str,
    version: int,
    details: Mapping[str, Any],
    actor: Actor,
) -> None:
    """A ``moved`` event for a patient whose bookings not started moved (each move: step, from and to
    days, to none when it was taken out), naming the cause; their open proposals are superseded."""
    event = {"cause": cause, "plan_version": version, "moves": moves} | dict(details)
    session.add(EventRow(patient_id=patient_id, kind="moved", details=event, created_by=actor.name))
    supersede_proposals(session, patient_id)

    def days(m: dict[str, Any], end: str) -> dict[str, Any]:
        return {"step": m["step"], "first_day": m[f"{end}_first_day"], "last_day": m[f"{end}_last_day"]}

    record(
        session,
        actor,
        "plan.moved",
        "patient",
        patient_id,
        {"bookings": [days(m, "from") for m in moves]},
        {"cause": cause, "bookings": [days(m, "to") for m in moves]},
    )


def _move(old: BookingRow, new: Booking | None) -> dict[str, Any]:
    """A booking not started that moved (``new`` None: taken out of the plan), as a moved event lists it."""
    return {
        "step": old.step,
        "from_first_day": old.first_day.isoformat(),
        "from_last_day": old.last_day.isoformat(),
        "to_first_day": new.first_day.isoformat() if new else None,
        "to_last_day": new.last_day.isoformat() if new else None,
    }


def _booking_json(row: BookingRow) -> dict[str, Any]:
    return {
        "patient": row.patient_id,
        "step": row.step,
        "first_day": row.first_day.isoformat(),
        "last_day": row.last_day.isoformat(),
    }


def _check_new_bookings(session: Session, settings: Settings, keep: list[Booking], new: list[Booking]) -> None:
    """Conflict if ``new`` (added to ``keep``) overfills a resource-day or breaks its patients' rules."""
    if not new:
        return
    today = settings.planning_day()
    patients = {b.patient for b in new}
    # only bookings that can share a day (or a slot week) with the new ones matter
    first = min(b.first_day for b in new) - timedelta(days=6)
    last = max(b.last_day for b in new)
    nearby = [b for b in keep if b.first_day <= last and b.last_day >= first]
    problem = state.build_problem(session, today, settings.horizon_days, include=patients | {b.patient for b in nearby})
    site = problem.site
    load_all = resource_load(problem, [*nearby, *new])
    touched = resource_load(problem, new)
    for resource, day, booked, limit, _ in load_all.overbooked(site, cells=touched.cells):
        raise Conflict(
            f"{resource.id} is full {resource.say_cell(day)}: "
            f"{booked - touched.booked(resource.id, day)} of {limit} already booked; "
            "ask for a new proposal"
        )
    # every other hard rule, for the patients whose bookings change (their started steps are frozen)
    sub = dataclasses.replace(
        problem,
        cohort=problem.cohort.model_copy(update={"patients": tuple(p for p in problem.patients if p.id in patients)}),
    )
    plan = Plan(cohort="site", method="confirm", bookings=tuple(b for b in [*keep, *new] if b.patient in patients))
    broken = [v for v in check_plan(sub, plan) if v.rule != "CAPACITY"]
    if broken:
        raise Conflict("the proposal no longer satisfies the rules: " + " ".join(v.message for v in broken[:3]))


def new_version(
    session: Session, head, kind: str, reason: str, actor: Actor, planning_day: date, solver_run: int | None = None
) -> PlanVersion:
    """The plan's next version, made on ``planning_day`` (the view of a past day reads the version then in force)."""
    parent = session.get(PlanVersion, head.version_id) if head.version_id else None
    version = PlanVersion(
        parent_id=parent.id if parent else None,
        kind=kind,
        reason=reason,
        created_by=actor.name,
        solver_run_id=solver_run,
        unschedulable=list(parent.unschedulable) if parent else [],
        planning_day=planning_day,
    )
    session.add(version)
    session.flush()
    head.version_id = version.id
    return version


# -- reschedule, withdraw -----------------------------------------------------------------------
def _active_patient(work: UnitOfWork, patient_id: str) -> PatientRow:
    """The patient, in a planning write; Conflict if withdrawn."""
    return state.refuse_withdrawn(state.get_patient(work.planning(), patient_id))


def supersede_proposals(session: Session, patient_id: str) -> None:
    for p in session.scalars(
        select(ProposalRow).where(ProposalRow.patient_id == patient_id, ProposalRow.status == "open")
    ):
        p.status = "superseded"


RELEASE_WORDS = {
    "deferral": "deferral",
    "oos": "product out of specification",
    "withdrawal": "withdrawal",
    "reinstatement": "reinstatement",
    "stopped": "step stopped",
}


def release_bookings(
    work: UnitOfWork,
    patient_id: str,
    kind: str,
    details: dict[str, Any],
    settings: Settings,
    actor: Actor,
    from_step: str | None = None,
    everything: bool = False,
) -> PlanVersion | None:
    """Take the patient's bookings out of the plan from today on: those not started; or (``from_step``)
    those of that step and the steps after it, to be done again; or (``everything``) all of them.

    What has happened stays in the plan. A booking in progress is ended yesterday: a new row in the
    new version, the old one leaving the plan (rows are never changed otherwise). With ``from_step``
    the bookings that started are carried over whole or ended, as history (``state.HISTORY_KINDS``),
    so that they are booked again. Open proposals are superseded; the event is recorded."""
    session, head = work.session, work.head
    patient = state.get_patient(session, patient_id)
    today = settings.planning_day()
    rows = state.current_rows(session, patient_id, planned=True)
    records = state.latest_records(session, {patient_id})
    if everything:
        taken = rows
    elif from_step is not None:
        order = [s.name for s in state.catalogue(session).template(patient.pathway).steps]
        taken = [b for b in rows if b.step not in order or order.index(b.step) >= order.index(from_step)]
    else:
        taken = [b for b in rows if not state.under_way(b, today, records)]
    released = [b for b in taken if not state.under_way(b, today, records)]
    history = [
        b for b in taken if state.under_way(b, today, records) and (b.last_day >= today or from_step is not None)
    ]
    supersede_proposals(session, patient_id)
    session.add(EventRow(patient_id=patient_id, kind=kind, details=details, created_by=actor.name))
    version = None
    if released or history:
        version = new_version(session, head, kind, f"{patient_id}: {RELEASE_WORDS.get(kind, kind)}", actor, today)
        for b in released + history:
            b.to_version = version.id
        for b in history:
            keep_as_history(session, b, kind, today, version.id)
    session.flush()
    record(
        session,
        actor,
        f"patient.{kind}",
        "patient",
        patient_id,
        {"bookings": [_booking_json(b) for b in released + history]},
        details | ({"history": [_booking_json(b) for b in history]} if history else {}),
    )
    return version


def keep_as_history(
    session: Session, row: BookingRow, kind: str, today: date, version_id: int, last_day: date | None = None
) -> None:
    """``row``'s days up to yesterday (or ``last_day``), again in the plan from ``version_id`` on, as history."""
    if last_day is None:
        last_day = max(row.first_day, min(row.last_day, today - timedelta(days=1)))  # (one started today)
    ended = f"ended {say_day(last_day)}" if last_day < row.last_day else "done"
    booking = Booking(patient=row.patient_id, step=row.step, first_day=row.first_day, last_day=last_day)
    why = f"{ended}; kept as history at the {RELEASE_WORDS.get(kind, kind)} on {say_day(today)}"
    _add_booking(session, booking, row.status, why, version_id)


def defer(
    work: UnitOfWork, patient_id: str, from_date: date, reason: str, settings: Settings, actor: Actor
) -> PlanVersion | None:
    """The patient cannot attend before ``from_date``: the bookings not started are released and the
    days until then become a blackout, which holds the steps that need the patient (collection,
    conditioning, infusion, stay) but not a product already in manufacture or release."""
    patient = _active_patient(work, patient_id)
    today = settings.planning_day()
    if from_date < today:
        raise InputError("", "from_date", f"{from_date.isoformat()} is in the past")
    before = _snapshot(patient)
    version = release_bookings(
        work, patient_id, "deferral", {"from_date": from_date.isoformat(), "reason": reason}, settings, actor
    )
    if from_date > today:
        blackout = {
            "first_day": today.isoformat(),
            "last_day": (from_date - timedelta(days=1)).isoformat(),
            "reason": "deferred",
        }
        patient.blackouts = [*(patient.blackouts or []), blackout]
    patient.status = "referred"
    record(work.session, actor, "patient.edit", "patient", patient_id, before, _snapshot(patient))
    return version


def out_of_specification(
    work: UnitOfWork, patient_id: str, redo: str, reason: str, settings: Settings, actor: Actor
) -> PlanVersion | None:
    """The product failed its release. ``re-apheresis``: collect again, the pathway restarts at the
    collection. ``re-manufacture``: make it again from retained cells; the collection stays, the
    patient moves to the pathway's re-manufacture variant (manufacture no longer tied to the
    collection day) and restarts at manufacture."""
    patient = _active_patient(work, patient_id)
    catalogue = state.catalogue(work.session)
    template = catalogue.template(patient.pathway)
    kinds = state.COLLECTION_KINDS if redo == "re-apheresis" else {StepKind.manufacture}
    restart = next((s for s in template.steps if s.kind in kinds), None)
    if restart is None:
        raise InputError("", "redo", f"pathway {patient.pathway!r} has no {redo.removeprefix('re-')} step")
    rows = {b.step: b for b in state.current_rows(work.session, patient_id, planned=True)}
    if restart.name not in rows or rows[restart.name].first_day >= settings.planning_day():
        raise Conflict(
            f"{patient_id}'s {restart.name} has not started yet: there is no product to be out of specification"
        )
    before = _snapshot(patient)
    version = release_bookings(
        work, patient_id, "oos", {"redo": redo, "reason": reason}, settings, actor, from_step=restart.name
    )
    if redo == "re-manufacture":
        variant = remanufacture_variant(template)
        if variant is not None:
            patient.pathway = variant.id
    patient.earliest_start = settings.planning_day()
    patient.status = "referred"
    record(work.session, actor, "patient.edit", "patient", patient_id, before, _snapshot(patient))
    return version


def withdraw(
    work: UnitOfWork, patient_id: str, reason: str, settings: Settings, actor: Actor, cause: str = "withdrawn"
) -> PlanVersion | None:
    """The patient leaves the plan, withdrawn or deceased (``cause``): every booking from today on is
    taken out, so its resources are free from today. What has happened stays: a booking in the past
    stays in the plan, one in progress (an inpatient stay) is ended yesterday."""
    patient = _active_patient(work, patient_id)
    before = _snapshot(patient)
    details = {"reason": reason, "cause": cause}
    version = release_bookings(work, patient_id, "withdrawal", details, settings, actor, everything=True)
    patient.status = "withdrawn"
    patient.updated_at = utcnow()
    record(work.session, actor, "patient.edit", "patient", patient_id, before, _snapshot(patient) | {"cause": cause})
    return version


def withdrawal_cause(session: Session, patient_id: str) -> str | None:
    """``withdrawn`` or ``deceased``, as the patient's latest withdrawal says (None: never withdrawn)."""
    query = select(EventRow.details).where(EventRow.patient_id == patient_id, EventRow.kind == "withdrawal")
    details = session.scalars(query.order_by(EventRow.id.desc())).first()
    return None if details is None else details.get("cause", "withdrawn")


def reinstate(work: UnitOfWork, patient_id: str, reason: str, settings: Settings, actor: Actor) -> PlanVersion | None:
    """A withdrawn patient is referred again (a deceased one cannot be). What was done before the
    withdrawal stays done and what it interrupted is planned again; if the steps done can no longer
    anchor the rest of the pathway (a step tied to them could only have started in the past), the
    pathway starts again from its beginning, the earlier bookings kept as history."""
    session = work.planning()
    patient = state.get_patient(session, patient_id)
    if patient.status != "withdrawn":
        raise Conflict(f"patient {patient_id} is not withdrawn (they are {patient.status})")
    if withdrawal_cause(session, patient_id) == "deceased":
        raise Conflict(f"patient {patient_id} is recorded as deceased: a deceased patient cannot be reinstated")
    before = _snapshot(patient)
    _refer_again(session, patient)
    details = {"reason": reason, "restart": "where it stopped"}
    version = None
    if not _plannable(session, patient_id, settings):
        details["restart"] = "from the beginning"
        first = state.catalogue(session).template(patient.pathway).steps[0].name
        version = release_bookings(work, patient_id, "reinstatement", details, settings, actor, from_step=first)
    else:
        supersede_proposals(session, patient_id)
        session.add(EventRow(patient_id=patient_id, kind="reinstatement", details=details, created_by=actor.name))
        record(session, actor, "patient.reinstatement", "patient", patient_id, None, details)
    record(session, actor, "patient.edit", "patient", patient_id, before, _snapshot(patient))
    return version


def _refer_again(session: Session, patient: PatientRow) -> None:
    """The withdrawn patient is referred again, unless another referral that is not withdrawn has
    their NHS number: Conflict naming it. Under a race the partial unique index decides."""
    holder = _nhs_holder(session, patient.nhs_number, patient.id) if patient.nhs_number else None
    if holder is None:
        try:
            with session.begin_nested():
                patient.status = "referred"
                patient.updated_at = utcnow()
                session.flush()
            return
        except IntegrityError:  # a referral with the number was stored at the same moment
            holder = _nhs_holder(session, patient.nhs_number, patient.id)
    raise Conflict(
        f"referral {holder or '(stored at the same moment)'} has this patient's NHS number and is not withdrawn: "
        f"{patient.id} cannot be reinstated while it is"
    )


def _plannable(session: Session, patient_id: str, settings: Settings) -> bool:
    """Whether the patient's steps done so far still let the rest of their pathway be planned from today."""
    try:
        state.build_problem(
            session, settings.planning_day(), settings.horizon_days, include={patient_id}, reopened={patient_id}
        )
    except InputError:
        return False
    return True


def record_confirmation(
    work: UnitOfWork, patient_id: str, note: str | None, settings: Settings, actor: Actor
) -> dict[str, Any]:
    """The coordinator confirmed the patient's current dates with them: a ``confirmation`` event
    naming the plan version and the dates still ahead (audited). The plan does not change."""
    session = work.session
    state.refuse_withdrawn(state.get_patient(session, patient_id))
    today = settings.planning_day()
    ahead = [b for b in state.current_rows(session, patient_id, planned=True) if b.last_day >= today]
    if not ahead:
        raise Conflict(f"patient {patient_id} has no booked dates ahead to confirm")
    details: dict[str, Any] = {"plan_version": state.current_version(session).id, "bookings": [_days(b) for b in ahead]}
    if note:
        details["note"] = note
    event = EventRow(patient_id=patient_id, kind="confirmation", details=details, created_by=actor.name)
    session.add(event)
    session.flush()
    record(session, actor, "patient.confirmation", "patient", patient_id, None, details)
    return details


def _days(row: BookingRow) -> dict[str, Any]:
    return {"step": row.step, "first_day": row.first_day.isoformat(), "last_day": row.last_day.isoformat()}


# -- capacity -----------------------------------------------------------------------------------
def add_capacity_change(
    work: UnitOfWork, change: CapacityChange, settings: Settings, actor: Actor
) -> CapacityChangeRow:
    session = work.planning()
    site = state.site(session)
    if site.exact_resource(change.resource, change.centre) is None:
        raise InputError("", "resource", site.no_such_resource(change.resource, change.centre))
    row = CapacityChangeRow(
        resource=change.resource,
        centre=change.centre,
        first_day=change.first_day,
        last_day=change.last_day,
        capacity=change.capacity,
        reason=change.reason,
        created_by=actor.name,
        created_on=settings.planning_day(),
    )
    session.add(row)
    session.flush()
    session.add(
        EventRow(
            kind="closure" if change.capacity == 0 else "capacity_change",
            details=state.change_dict(row) | {"id": row.id},
            created_by=actor.name,
        )
    )
    record(session, actor, "capacity.change", "capacity_change", row.id, None, state.change_dict(row))
    return row


def withdraw_capacity_change(work: UnitOfWork, change_id: int, settings: Settings, actor: Actor) -> CapacityChangeRow:
    """The change no longer holds from today on (the view of a past day still shows it)."""
    session = work.planning()
    row = session.get(CapacityChangeRow, change_id)
    if row is None:
        raise NotFound(f"no capacity change {change_id}")
    if row.withdrawn_at is not None:
        raise Conflict(f"capacity change {change_id} is withdrawn already")
    row.withdrawn_at = utcnow()
    row.withdrawn_on = settings.planning_day()
    record(session, actor, "capacity.withdraw", "capacity_change", row.id, state.change_dict(row), None)
    return row


def broken_by(session: Session, change: CapacityChangeRow, settings: Settings) -> list[dict[str, Any]]:
    """Patients whose current bookings the change leaves over capacity (or blocked), with the resource-days."""
    problem = state.build_problem(session, settings.planning_day(), settings.horizon_days)
    load = resource_load(problem, [state.as_booking(b) for b in state.current_rows(session, planned=True)])
    out: dict[str, dict[str, Any]] = {}
    for resource, day, _, _, uses in load.overbooked(problem.site):
        if resource.kind != change.resource or resource.centre != change.centre:
            continue
        first, last = resource.cell_days(day)
        if last < change.first_day or first > change.last_day:
            continue
        for u in uses:
            entry = out.setdefault(u.patient, {"patient": u.patient, "steps": set(), "days": set()})
            entry["steps"].add(u.step)
            entry["days"].add(day.isoformat())
    return [
        {"patient": e["patient"], "steps": sorted(e["steps"]), "days": sorted(e["days"])}
        for e in sorted(out.values(), key=lambda e: e["patient"])
    ]


# -- whole-site solve and import (demo, re-plan) ------------------------------------------------
def import_cohort(work: UnitOfWork, problem: Problem, actor: Actor) -> int:
    """Register every patient of a cohort file (ids must be new); returns how many."""
    session = work.planning()
    for p in problem.patients:
        if session.get(PatientRow, p.id) is not None:
            raise Conflict(f"patient {p.id!r} exists already")
        session.add(PatientRow(id=p.id, status="referred", **_row_values(p.model_dump(mode="json"))))
    session.flush()
    for p in problem.patients:
        session.add(
            EventRow(patient_id=p.id, kind="referral", details={"import": problem.cohort.name}, created_by=actor.name)
        )
    record(session, actor, "patient.import", "cohort", problem.cohort.name, None, {"patients": len(problem.patients)})
    return len(problem.patients)


def publish_plan(
    work: UnitOfWork, plan: Plan, patients: set[str], base_changes: int, publication: Publication, settings: Settings
) -> PlanVersion:
    """Make ``plan``'s bookings of ``patients`` current (their not-started bookings replaced), in one planning write.

    ``base_changes`` is the plan head's change count the plan was computed on:
    if anyone wrote since, the plan is stale and StalePlan is raised. A booking
    that does not move keeps its status; a new or moved one gets the
    publication's ``booking_status`` and, as the reason it is where it is, the
    patient's cause (``publication.cause``). A step booked again replaces its
    history. Every patient whose bookings not started moved (or were taken
    out) gets a ``moved`` event naming the cause.
    """
    session, head = work.session, work.head
    if head.changes != base_changes + 1:
        raise StalePlan("the plan changed while the solver ran; run it again")
    kind, actor = publication.kind, publication.actor
    today = settings.planning_day()
    run = SolverRun(
        kind=kind,
        status=str(plan.stats.get("status", "")),
        stats=dict(plan.stats),
        created_by=actor.name,
        finished_at=utcnow(),
    )
    session.add(run)
    session.flush()
    version = new_version(session, head, kind, publication.reason, actor, today, solver_run=run.id)
    moves = _replace_bookings(session, plan, patients, publication, today, version.id)
    unschedulable = {u.patient: u.model_dump(mode="json") for u in plan.unschedulable if u.patient in patients}
    version.unschedulable = [u for u in version.unschedulable if u["patient"] not in patients] + list(
        unschedulable.values()
    )
    scheduled = plan.scheduled_patients()
    for pid in patients:
        row = session.get(PatientRow, pid)
        if row is not None and row.status != "withdrawn":
            row.status = "unschedulable" if pid in unschedulable else ("scheduled" if pid in scheduled else row.status)
    session.flush()
    for pid, moved in sorted(moves.items()):
        _tell_moved(session, pid, moved, publication.cause(pid), version.id, publication.details, actor)
    record(
        session,
        actor,
        f"plan.{kind}",
        "plan_version",
        version.id,
        None,
        {"patients": len(patients), "status": run.status, "objective": plan.stats.get("objective")},
    )
    return version


def _replace_bookings(
    session: Session, plan: Plan, patients: set[str], publication: Publication, today: date, version_id: int
) -> dict[str, list[dict[str, Any]]]:
    """Put ``plan``'s bookings of ``patients`` in the plan from version ``version_id`` on, in place of
    their bookings not started (a started one stays as it is) and of the history of a step booked
    again; returns, per patient, the bookings not started that moved or were taken out."""
    current = {(b.patient_id, b.step): b for b in state.current_rows(session, planned=True) if b.patient_id in patients}
    history = {(b.patient_id, b.step): b for b in state.history_rows(session, patients)}
    moves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for booking in plan.bookings:
        if booking.patient not in patients:
            continue
        key = (booking.patient, booking.step)
        old = current.pop(key, None)
        if old is not None and (old.first_day, old.last_day) == (booking.first_day, booking.last_day):
            continue
        if old is not None:
            if old.first_day < today:
                continue  # started: stays as it is
            old.to_version = version_id
            moves[booking.patient].append(_move(old, booking))
        if key in history:
            history.pop(key).to_version = version_id
        fixed_by = f"{publication.cause(booking.patient)} (plan version {version_id})"
        _add_booking(session, booking, publication.booking_status, fixed_by, version_id)
    for old in current.values():  # booked before, not in the new plan (the patient became unschedulable)
        if old.first_day >= today:
            old.to_version = version_id
            moves[old.patient_id].append(_move(old, None))
    return moves


@dataclasses.dataclass
class ReplanInput:
    problem: Problem
    base_changes: int


def replan_input(session: Session, patients: set[str], settings: Settings) -> ReplanInput:
    """Everyone outside ``patients`` keeps every current booking; ``patients`` keep only what has started."""
    head = state.head(session)
    everyone = {pid for (pid,) in session.execute(select(PatientRow.id))}
    problem = state.build_problem(session, settings.planning_day(), settings.horizon_days, fixed=everyone - patients)
    return ReplanInput(problem, head.changes)


def run_replan(data: ReplanInput, settings: Settings) -> Plan:
    """The whole-site solve (runs in the solver pool, no database)."""
    from solver.solve import SolveOptions, solve

    return solve(data.problem, options=SolveOptions(time_limit=settings.solve_time_limit, workers=4))


@dataclasses.dataclass
class Replan:
    """A planning round (``api.replanning``) that re-plans ``patients``' bookings that have not
    started, everyone else staying where they are; ``solve_on`` runs the solve (the solver pool)."""

    patients: set[str]
    publication: Publication
    settings: Settings
    solve_on: Callable[..., Any] = lambda solve, *args: solve(*args)
    name: str = "re-plan"

    def read(self, session: Session, attempt: int) -> ReplanInput:
        for pid in sorted(self.patients):
            state.refuse_withdrawn(state.get_patient(session, pid))
        return replan_input(session, self.patients, self.settings)

    def solve(self, data: ReplanInput) -> Plan:
        return self.solve_on(run_replan, data, self.settings)

    def publish(self, work: UnitOfWork, data: ReplanInput, plan: Plan) -> Replanned:
        return Replanned(
            publish_plan(work, plan, self.patients, data.base_changes, self.publication, self.settings), plan
        )


class Replanned(NamedTuple):
    version: PlanVersion
    plan: Plan
