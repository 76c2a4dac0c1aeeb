"""Use cases that record what actually happened: a booked step started, done, missed or cancelled;
a product with the identifiers the lab and the manufacturer issued; each link of its chain of custody.

Records are facts and are only ever added: a step's state is its latest record, a product's its
custody events in order. The plan follows the facts in the same planning write: a step done on other
days than booked is re-booked on the days it took, a missed one is taken out of the plan, a product
expected back late lengthens its manufacture. Each use case says whether the patient's plan must be
made again (``Recorded.replan``, the cause in words); the workflow then re-plans that patient alone.

The release gate is hard: conditioning cannot be recorded as started without a product released at
the centre, nor an infusion without the product's scanned identifiers matching (``pathway.custody``).
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import services, state
from api.audit import Actor, record
from api.db import BookingRow, CustodyEvent, EventRow, PatientRow, ProductRow, StepRecord
from api.settings import Settings
from api.state import Conflict, NotFound, NotYours
from api.unit_of_work import UnitOfWork
from pathway.catalogue import StepKind, Template
from pathway.custody import (
    CustodyKind,
    CustodyStep,
    ProductState,
    conditioning_gate,
    infusion_gate,
    next_problem,
    product_state,
)
from pathway.dates import say_day
from pathway.errors import InputError
from pathway.isbt import parse_chain_of_identity, parse_din, parse_product_code
from pathway.plan import Plan
from pathway.rules import check_plan
from pathway.usage import resource_load


class Refused(Conflict):
    """A rule refuses the record (the release gate, the chain of identity): HTTP 409 naming the field."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field = field


class IdentityMismatch(Refused):
    """The scanned identifiers are not those of the patient's product: refused, and audited apart."""

    def __init__(self, patient_id: str, product_id: int | None, field: str, problem: str):
        super().__init__(field, problem)
        self.patient_id = patient_id
        self.product_id = product_id


@dataclasses.dataclass(frozen=True)
class StepEntry:
    """What a person records of a booked step."""

    outcome: str  # started, done, missed, cancelled
    first_day: date | None = None
    last_day: date | None = None
    reason: str = ""
    note: str = ""
    scanned_din: str | None = None
    scanned_chain_of_identity: str | None = None


@dataclasses.dataclass(frozen=True)
class Recorded:
    """A stored record, and the cause in words when the patient's plan must be made again."""

    id: int
    replan: str | None = None


# -- steps --------------------------------------------------------------------------------------
def record_step(
    work: UnitOfWork, patient_id: str, step: str, entry: StepEntry, settings: Settings, actor: Actor
) -> Recorded:
    session = work.planning()
    patient = _active(session, patient_id)
    template = state.catalogue(session).template(patient.pathway)
    kind = _step_kind(template, step)
    if actor.role == "lab_manager" and kind not in state.PRODUCT_KINDS:
        raise NotYours(f"a lab manager records the product's steps; {_say(step)} is recorded by a coordinator")
    booking = _current_booking(session, patient_id, step)
    today = settings.planning_day()
    previous = state.latest_records(session, {patient_id}).get(booking.id)
    _check_sequence(step, entry.outcome, previous, booking, today)
    if previous is not None and entry.outcome == "cancelled":
        return _stopped(work, patient, booking, previous, entry, settings, actor)
    if entry.outcome in ("missed", "cancelled"):
        return _not_done(work, patient, booking, entry, settings, actor)
    first, last = _actual_days(entry, previous, booking, today)
    if previous is None and kind == StepKind.conditioning:
        gate = conditioning_gate(template, product_states(session, patient_id), first)
        if gate:
            raise Refused("outcome", f"conditioning cannot start on {say_day(first)}: {gate}")
    product = None
    if previous is None and kind == StepKind.infusion:
        product = _check_infusion(session, patient_id, template, entry, first)
    row = StepRecord(
        patient_id=patient_id,
        step=step,
        booking_id=booking.id,
        outcome=entry.outcome,
        first_day=first,
        last_day=last if entry.outcome == "done" else None,
        reason=entry.reason,
        note=entry.note,
        recorded_on=today,
        recorded_by=actor.name,
    )
    planned_last = last if last is not None else first + (booking.last_day - booking.first_day)
    replan = None
    if (first, planned_last) != (booking.first_day, booking.last_day):
        rebooked = _rebook(work, booking, first, planned_last, f"{_say(step)} {entry.outcome}", settings, actor)
        row.booking_id = rebooked.id
        _release_dependents(session, template, patient_id, step, rebooked.from_version, settings.planning_day())
        booked = _span(booking.first_day, booking.last_day)
        replan = f"{_say(step)} recorded {entry.outcome} {_span(first, last)}, booked {booked}"
    session.add(row)
    session.flush()
    last_dose = [s.name for s in template.steps if s.kind == StepKind.infusion][-1] == step  # a split dose: 2 steps
    if product is not None and last_dose:
        _add_custody(session, product, CustodyKind.infused, first, {}, today, actor)
    record(session, actor, f"step.{entry.outcome}", "patient", patient_id, None, _record_json(row))
    return Recorded(row.id, replan)


def _active(session: Session, patient_id: str) -> PatientRow:
    patient = state.get_patient(session, patient_id)
    if patient.status == "withdrawn":
        raise Conflict(f"patient {patient_id} is withdrawn: nothing more is recorded for them")
    return patient


def _step_kind(template: Template, step: str) -> StepKind:
    found = next((s for s in template.steps if s.name == step), None)
    if found is None:
        raise NotFound(
            f"pathway {template.id} has no step {step!r} (its steps: {', '.join(s.name for s in template.steps)})"
        )
    return found.kind


def _current_booking(session: Session, patient_id: str, step: str) -> BookingRow:
    booking = next((b for b in state.current_rows(session, patient_id, planned=True) if b.step == step), None)
    if booking is None:
        raise Conflict(f"{_say(step)} is not booked for {patient_id}: book it (a proposal) before recording it")
    return booking


def _check_sequence(step: str, outcome: str, previous: StepRecord | None, booking: BookingRow, today: date) -> None:
    """A booking goes planned -> started -> done, or planned -> missed/cancelled; nothing after done."""
    if previous is None:
        if outcome == "missed" and booking.first_day > today:
            raise InputError(
                "",
                "outcome",
                f"{_say(step)} is booked from {say_day(booking.first_day)}: it cannot "
                "have been missed yet (cancel it instead)",
            )
        return
    done = f"{_say(step)} is recorded as {previous.outcome} {_span(previous.first_day, previous.last_day)}"
    if previous.outcome == "started" and outcome == "cancelled":
        return  # stopped part-way: what was given stays (``_stopped``)
    if previous.outcome == "done" or outcome != "done":
        raise Conflict(
            f"{done}: "
            + (
                "nothing more can be recorded of it"
                if previous.outcome == "done"
                else "record it as done, or as cancelled if it was stopped (a started step is not missed)"
            )
        )


def _actual_days(entry: StepEntry, previous: StepRecord | None, booking: BookingRow, today: date):
    """The actual first and last days: as given, else as started, else as booked; never in the future."""
    first = entry.first_day or (previous.first_day if previous else booking.first_day)
    if previous is not None and entry.first_day and entry.first_day != previous.first_day:
        raise InputError("", "first_day", f"it was recorded as started on {say_day(previous.first_day)}")
    last = None
    if entry.outcome == "started":
        if entry.last_day is not None:
            raise InputError("", "last_day", "a step that has only started has no last day: record it as done")
    else:
        last = entry.last_day or first + (booking.last_day - booking.first_day)
    for name, day in (("first_day", first), ("last_day", last)):
        if day is not None and day > today:
            raise InputError("", name, f"{say_day(day)} is in the future: record what has happened")
    if last is not None and last < first:
        raise InputError("", "last_day", "is before the first day")
    return first, last


def _not_done(
    work: UnitOfWork, patient: PatientRow, booking: BookingRow, entry: StepEntry, settings: Settings, actor: Actor
) -> Recorded:
    """A missed or cancelled step is taken out of the plan (its booking ends): it is planned again."""
    if not entry.reason.strip():
        raise InputError("", "reason", f"say why the step was {entry.outcome}")
    if entry.first_day or entry.last_day:
        raise InputError("", "first_day", f"a step {entry.outcome} has no days of its own")
    session, today = work.session, settings.planning_day()
    version = services.new_version(
        session, work.head, "record", f"{patient.id}: {_say(booking.step)} {entry.outcome}", actor, today
    )
    booking.to_version = version.id
    template = state.catalogue(session).template(patient.pathway)
    _release_dependents(session, template, patient.id, booking.step, version.id, settings.planning_day())
    if entry.outcome == "missed" and (patient.earliest_start is None or patient.earliest_start <= today):
        _edit(session, patient, "earliest_start", today + timedelta(days=1), actor)  # not booked again today
    cause = f"{_say(booking.step)} {entry.outcome} ({_span(booking.first_day, booking.last_day)}): {entry.reason}"
    row = _not_given(session, booking, entry, None, None, cause, f"step_{entry.outcome}", today, actor)
    _last_dose_not_given(session, template, patient.id, booking.step, today, actor)
    return Recorded(row.id, cause)


def _last_dose_not_given(session: Session, template: Template, patient_id: str, step: str, today: date, actor: Actor):
    """A split dose whose last dose will not be given: the product was infused with the doses given
    (its chain of custody ends there), if one was."""
    doses = [s.name for s in template.steps if s.kind == StepKind.infusion]
    if len(doses) < 2 or step != doses[-1]:
        return
    given = [r for r in state.latest_records(session, {patient_id}).values() if r.step in doses and r.outcome == "done"]
    issued = [
        p
        for p in state.current_products(session, patient_id)
        if product_state(_history(session, p.id)).last == CustodyKind.issued
    ]
    if given and issued:
        last_given = max(r.last_day or r.first_day for r in given)
        _add_custody(
            session, issued[-1], CustodyKind.infused, last_given, {"note": f"{_say(step)} not given"}, today, actor
        )


def _dependents(template: Template, step: str) -> set[str]:
    """The steps tied by a lag to ``step``, directly or through others."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for s in template.steps:
            if s.name not in found and any(lag.after == step or lag.after in found for lag in s.lags):
                found.add(s.name)
                changed = True
    return found


def _release_dependents(
    session: Session, template: Template, patient_id: str, step: str, version: int, today: date
) -> None:
    """Take out of the plan (from ``version``) the steps tied to ``step`` whose first day has passed
    with nothing recorded: their days followed from its booked ones, so they are not facts, yet every
    re-plan would hold them as under way. The re-plan that follows books them after its real days
    (one that did happen is held with it again, ``pathway.inflight``); the tied steps still ahead are
    simply moved by it, each move an event naming the cause."""
    tied = _dependents(template, step)
    records = state.latest_records(session, {patient_id})
    for b in state.current_rows(session, patient_id, planned=True):
        if b.step in tied and b.id not in records and b.first_day < today:
            b.to_version = version


def _stopped(
    work: UnitOfWork,
    patient: PatientRow,
    booking: BookingRow,
    started: StepRecord,
    entry: StepEntry,
    settings: Settings,
    actor: Actor,
) -> Recorded:
    """A step stopped part-way (conditioning stopped for an infection): the days given stay in the
    plan as history, up to ``last_day`` (default: yesterday, or the day it started), and the step is
    planned again in full with the steps tied to it."""
    if not entry.reason.strip():
        raise InputError("", "reason", "say why the step was stopped")
    session, today = work.session, settings.planning_day()
    last = entry.last_day or max(started.first_day, today - timedelta(days=1))
    if last > today or last < started.first_day or last > booking.last_day:
        raise InputError(
            "",
            "last_day",
            f"the last day given falls between {_span(started.first_day, booking.last_day)} and not after today",
        )
    version = services.new_version(
        session, work.head, "stopped", f"{patient.id}: {_say(booking.step)} stopped", actor, today
    )
    booking.to_version = version.id
    services.keep_as_history(session, booking, "stopped", today, version.id, last_day=last)
    template = state.catalogue(session).template(patient.pathway)
    _release_dependents(session, template, patient.id, booking.step, version.id, today)
    cause = f"{_say(booking.step)} stopped after {_span(started.first_day, last)}: {entry.reason}"
    row = _not_given(session, booking, entry, started.first_day, last, cause, "step_stopped", today, actor)
    return Recorded(row.id, cause)


def _not_given(
    session: Session,
    booking: BookingRow,
    entry: StepEntry,
    first: date | None,
    last: date | None,
    cause: str,
    event: str,
    today: date,
    actor: Actor,
) -> StepRecord:
    """The record of a step missed, cancelled or stopped (``first``..``last``: the days it was given),
    with the patient's event naming the cause, audited."""
    row = StepRecord(
        patient_id=booking.patient_id,
        step=booking.step,
        booking_id=booking.id,
        outcome=entry.outcome,
        first_day=first,
        last_day=last,
        reason=entry.reason,
        note=entry.note,
        recorded_on=today,
        recorded_by=actor.name,
    )
    session.add(row)
    details = {"step": booking.step, "cause": cause}
    session.add(EventRow(patient_id=booking.patient_id, kind=event, details=details, created_by=actor.name))
    session.flush()
    action = "step.stopped" if event == "step_stopped" else f"step.{entry.outcome}"
    record(session, actor, action, "patient", booking.patient_id, None, _record_json(row))
    return row


def _rebook(
    work: UnitOfWork, booking: BookingRow, first: date, last: date, what: str, settings: Settings, actor: Actor
) -> BookingRow:
    """Put the booking on the days it really took (a new plan version; the old row stays in history)."""
    session = work.session
    version = services.new_version(
        session, work.head, "record", f"{booking.patient_id}: {what}", actor, settings.planning_day()
    )
    booking.to_version = version.id
    new = BookingRow(
        patient_id=booking.patient_id,
        step=booking.step,
        first_day=first,
        last_day=last,
        status=booking.status,
        fixed_by=f"recorded: {what} by {actor.name}",
        from_version=version.id,
    )
    session.add(new)
    session.flush()
    before = state.latest_records(session, {booking.patient_id}).get(booking.id)
    if before is not None and before.outcome in ("started", "done"):  # under way (again), on its new days
        session.add(_started(new, before.first_day, f"carried over: {what}", settings, actor))
    return new


def _started(booking: BookingRow, first_day: date, note: str, settings: Settings, actor: Actor) -> StepRecord:
    return StepRecord(
        patient_id=booking.patient_id,
        step=booking.step,
        booking_id=booking.id,
        outcome="started",
        first_day=first_day,
        note=note,
        recorded_on=settings.planning_day(),
        recorded_by=actor.name,
    )


def _record_json(row: StepRecord) -> dict[str, Any]:
    return {
        "step": row.step,
        "outcome": row.outcome,
        "first_day": row.first_day.isoformat() if row.first_day else None,
        "last_day": row.last_day.isoformat() if row.last_day else None,
        "reason": row.reason,
        "note": row.note,
    }


# -- the chain of identity at the bedside -------------------------------------------------------
def _check_infusion(
    session: Session, patient_id: str, template: Template, entry: StepEntry, day: date
) -> ProductRow | None:
    """The product to infuse: gate open, issued, and the scanned identifiers its own."""
    products = state.current_products(session, patient_id)
    states = {p.id: product_state(_history(session, p.id)) for p in products}
    gate = infusion_gate(template, list(states.values()), day)
    if gate:
        raise Refused("outcome", f"the infusion cannot be recorded: {gate}")
    ready = [p for p in products if states[p.id].last == CustodyKind.issued]
    if not ready:
        raise Refused("outcome", "no product of this patient is recorded as issued: record its issue first")
    product = ready[-1]
    if not entry.scanned_din:
        raise InputError("", "scanned.din", "scan the donation identification number on the bag")
    if product.din is None:
        raise Refused("scanned.din", "the product has no donation identification number recorded: record it first")
    try:
        scanned = parse_din(entry.scanned_din)
    except InputError as exc:
        raise InputError("", "scanned.din", exc.problem) from None
    if scanned.number != product.din:
        raise IdentityMismatch(
            patient_id,
            product.id,
            "scanned.din",
            "the bag's donation identification number is not this patient's product: do not infuse",
        )
    if product.chain_of_identity is not None:
        if not entry.scanned_chain_of_identity:
            raise InputError("", "scanned.chain_of_identity", "scan the chain-of-identity identifier on the cassette")
        try:
            scanned_identity = parse_chain_of_identity(entry.scanned_chain_of_identity)
        except InputError as exc:
            raise InputError("", "scanned.chain_of_identity", exc.problem) from None
        if scanned_identity != product.chain_of_identity:
            raise IdentityMismatch(
                patient_id,
                product.id,
                "scanned.chain_of_identity",
                "the chain-of-identity identifier is not this patient's product: do not infuse",
            )
    return product


def record_mismatch(session: Session, exc: IdentityMismatch, actor: Actor) -> None:
    """The audit row of a refused identity check (written in its own transaction: the refusal stores nothing else)."""
    record(
        session,
        actor,
        "infusion.identity_mismatch",
        "patient",
        exc.patient_id,
        None,
        {"product": exc.product_id, "field": exc.field, "refused": str(exc)},
    )


# -- products -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ProductEntry:
    collection_step: str
    din: str | None = None
    product_code: str | None = None
    chain_of_identity: str | None = None
    order_reference: str | None = None
    bags: int | None = None


def register_product(
    work: UnitOfWork, patient_id: str, entry: ProductEntry, settings: Settings, actor: Actor
) -> ProductRow:
    session = work.planning()  # the plan lock queues registrations: the donation number check holds
    patient = _active(session, patient_id)
    template = state.catalogue(session).template(patient.pathway)
    collections = [s.name for s in template.steps if s.kind in state.COLLECTION_KINDS]
    if entry.collection_step not in collections:
        raise InputError(
            "", "collection_step", f"pathway {template.id}'s collection step is {' or '.join(collections)}"
        )
    din = parse_din(entry.din) if entry.din else None
    if din is not None:  # a donation's products (a re-manufacture) share its number; another patient's never do
        owner = session.scalars(select(ProductRow.patient_id).where(ProductRow.din == din.number)).first()
        if owner is not None and owner != patient_id:
            raise Conflict("this donation identification number belongs to another patient's product")
    row = ProductRow(
        patient_id=patient_id,
        collection_step=entry.collection_step,
        din=din.number if din else None,
        din_check=din.check if din else None,
        product_code=parse_product_code(entry.product_code) if entry.product_code else None,
        chain_of_identity=parse_chain_of_identity(entry.chain_of_identity) if entry.chain_of_identity else None,
        order_reference=entry.order_reference,
        bags=entry.bags,
        created_on=settings.planning_day(),
        created_by=actor.name,
    )
    session.add(row)
    session.flush()
    record(session, actor, "product.register", "product", row.id, None, product_json(row) | {"patient": patient_id})
    return row


def product_json(row: ProductRow) -> dict[str, Any]:
    return {
        "collection_step": row.collection_step,
        "din": f"{row.din}{row.din_check}" if row.din else None,
        "product_code": row.product_code,
        "chain_of_identity": row.chain_of_identity,
        "order_reference": row.order_reference,
        "bags": row.bags,
    }


def _history(session: Session, product_id: int) -> list[CustodyStep]:
    events = session.scalars(
        select(CustodyEvent).where(CustodyEvent.product_id == product_id).order_by(CustodyEvent.id)
    )
    return [CustodyStep(CustodyKind(e.kind), e.day, dict(e.details)) for e in events]


def product_states(session: Session, patient_id: str) -> list[ProductState]:
    return [product_state(_history(session, p.id)) for p in state.current_products(session, patient_id)]


# -- custody ------------------------------------------------------------------------------------
DETAILS = ("courier_reference", "storage_location", "reason", "clinician", "note")


def record_custody(
    work: UnitOfWork,
    product_id: int,
    kind: CustodyKind,
    day: date,
    details: dict[str, str],
    settings: Settings,
    actor: Actor,
) -> Recorded:
    """One link of the chain, in order. ``expected_back`` moves the manufacture's end (a delay or an
    early return) and ``released`` records the release step done: both re-plan the patient if the
    days change."""
    session = work.planning()
    product = session.get(ProductRow, product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    patient = state.get_patient(session, product.patient_id)  # a withdrawn patient's product is still tracked
    today = settings.planning_day()
    if kind == CustodyKind.infused:
        raise InputError("", "kind", "an infusion is recorded at its step, with the bag's scanned identifiers")
    problem = next_problem(_history(session, product_id), kind, day, details, today)
    if problem is not None:
        field, why = problem
        raise InputError("", field.removeprefix("details."), why)
    event = _add_custody(session, product, kind, day, details, today, actor)
    replan = None
    if kind == CustodyKind.expected_back and patient.status != "withdrawn":
        replan = _expected_back(work, patient, day, settings, actor)
    elif kind == CustodyKind.released and patient.status != "withdrawn":
        replan = _released(work, patient, day, settings, actor)
    if kind in (
        CustodyKind.expected_back,
        CustodyKind.out_of_specification,
        CustodyKind.exceptional_release,
        CustodyKind.lost,
    ):
        session.add(
            EventRow(
                patient_id=patient.id,
                kind=f"product_{kind.value}",
                details={
                    "product": product.id,
                    "day": day.isoformat(),
                    **details,
                    **({"cause": replan} if replan else {}),
                },
                created_by=actor.name,
            )
        )
    session.flush()
    return Recorded(event.id, replan)


def _add_custody(
    session: Session,
    product: ProductRow,
    kind: CustodyKind,
    day: date,
    details: dict[str, str],
    today: date,
    actor: Actor,
) -> CustodyEvent:
    event = CustodyEvent(
        product_id=product.id,
        kind=kind.value,
        day=day,
        details=dict(details),
        recorded_on=today,
        recorded_by=actor.name,
    )
    session.add(event)
    session.flush()
    record(
        session,
        actor,
        f"custody.{kind.value}",
        "product",
        product.id,
        None,
        {"patient": product.patient_id, "day": day.isoformat(), **details},
    )
    return event


def _step_before_release(template: Template) -> tuple[str, str] | None:
    """(manufacture step, release step) of a pathway whose product comes back to be released."""
    names = [s.name for s in template.steps]
    release = next((s for s in template.steps if s.kind == StepKind.release), None)
    if release is None or names.index(release.name) == 0:
        return None
    return names[names.index(release.name) - 1], release.name


def _expected_back(work: UnitOfWork, patient: PatientRow, day: date, settings: Settings, actor: Actor) -> str | None:
    """The product is expected back at the centre on ``day``: its manufacture ends the day before, and
    release, conditioning and infusion are planned again from there (the cause names the delay)."""
    session = work.session
    steps = _step_before_release(state.catalogue(session).template(patient.pathway))
    if steps is None:
        return None
    rows = {b.step: b for b in state.current_rows(session, patient.id, planned=True)}
    manufacture = rows.get(steps[0])
    if manufacture is None or manufacture.last_day + timedelta(days=1) == day:
        return None
    if day <= manufacture.first_day:
        raise InputError(
            "", "day", f"the manufacture started on {say_day(manufacture.first_day)}: it cannot be back by then"
        )
    planned = manufacture.last_day + timedelta(days=1)
    late = (day - planned).days
    words = f"{late} day{'s' if abs(late) != 1 else ''} {'later' if late > 0 else 'earlier'}"
    cause = f"product expected back on {say_day(day)}, {words} than planned ({say_day(planned)})"
    if manufacture.id not in state.latest_records(session, {patient.id}):  # under way: the product is away
        session.add(_started(manufacture, manufacture.first_day, "the product is away", settings, actor))
        session.flush()
    longer = _rebook(work, manufacture, manufacture.first_day, day - timedelta(days=1), cause, settings, actor)
    template = state.catalogue(session).template(patient.pathway)
    _release_dependents(session, template, patient.id, manufacture.step, longer.from_version, settings.planning_day())
    return cause


def _released(work: UnitOfWork, patient: PatientRow, day: date, settings: Settings, actor: Actor) -> str | None:
    """The product is released on ``day``: the steps that made it (processing, manufacture) are done,
    by then at the latest, and the release step is done that day (booked or not on that day)."""
    session = work.session
    template = state.catalogue(session).template(patient.pathway)
    release = next((s for s in template.steps if s.kind == StepKind.release), None)
    causes = []
    for step in template.steps:
        if step.kind not in state.PRODUCT_KINDS:
            continue
        booking = next((b for b in state.current_rows(session, patient.id, planned=True) if b.step == step.name), None)
        record_ = state.latest_records(session, {patient.id}).get(booking.id) if booking else None
        if booking is None or (record_ is not None and record_.outcome == "done") or booking.first_day > day:
            continue
        if step is release:
            first = day if release.duration_days == 1 else booking.first_day
            last = day
        else:
            first, last = booking.first_day, max(booking.first_day, min(booking.last_day, day))
        entry = StepEntry(outcome="done", first_day=first, last_day=last, note="the product was released")
        cause = record_step(work, patient.id, step.name, entry, settings, actor).replan
        if cause:
            causes.append(cause)
    if release is not None:
        booking = next(
            (b for b in state.current_rows(session, patient.id, planned=True) if b.step == release.name), None
        )
        if booking is not None and booking.first_day > day:  # released before its booked day (the loop left it)
            entry = StepEntry(outcome="done", first_day=day, last_day=day, note="the product was released")
            causes.append(record_step(work, patient.id, release.name, entry, settings, actor).replan or "")
    return "; ".join(c for c in causes if c) or None


def _say(step: str) -> str:
    return step.replace("_", " ")


def _span(first: date | None, last: date | None) -> str:
    if first is None:
        return ""
    if last is None or last == first:
        return f"on {say_day(first)}"
    return f"from {say_day(first)} to {say_day(last)}"


# -- poor mobilisation --------------------------------------------------------------------------
def poor_mobilisation(work: UnitOfWork, patient_id: str, reason: str, settings: Settings, actor: Actor) -> Recorded:
    """Too few cells collected: a second harvest day straight after the booked ones, if the pathway
    allows one more day and the collection has room then; otherwise mobilisation starts again."""
    session = work.planning()
    patient = _active(session, patient_id)
    template = state.catalogue(session).template(patient.pathway)
    mobilisation = next((s for s in template.steps if s.kind == StepKind.mobilisation), None)
    harvest = next((s for s in template.steps if s.kind == StepKind.apheresis), None)
    if mobilisation is None or harvest is None:
        raise Conflict(f"pathway {template.id} has no mobilisation and harvest")
    booking = _current_booking(session, patient_id, harvest.name)
    today = settings.planning_day()
    if booking.first_day > today:
        raise Conflict(f"{_say(harvest.name)} starts on {say_day(booking.first_day)}: nothing has been collected yet")
    session.add(
        EventRow(patient_id=patient_id, kind="poor_mobilisation", details={"reason": reason}, created_by=actor.name)
    )
    record(session, actor, "patient.poor_mobilisation", "patient", patient_id, None, {"reason": reason})
    extra = _second_harvest_day(session, patient, harvest, booking, settings, actor)
    if extra is not None:
        cause = f"poor mobilisation ({reason}): a second harvest day on {say_day(extra)}"
        row = _rebook(work, booking, booking.first_day, extra, cause, settings, actor)
        _release_dependents(session, template, patient_id, harvest.name, row.from_version, settings.planning_day())
        return Recorded(row.id, cause)
    cause = f"poor mobilisation ({reason}): mobilisation starts again (no second harvest day)"
    services.release_bookings(
        work, patient_id, "remobilisation", {"reason": reason}, settings, actor, from_step=mobilisation.name
    )
    _edit(session, patient, "earliest_start", today, actor)
    return Recorded(booking.id, cause)


def _second_harvest_day(
    session: Session, patient: PatientRow, harvest, booking: BookingRow, settings: Settings, actor: Actor
) -> date | None:
    """The day after the booked harvest, if the pathway allows one more day, it is open for
    collections and not past, and every resource the harvest uses has room that day; else None."""
    days = (booking.last_day - booking.first_day).days + 1
    extra = booking.last_day + timedelta(days=1)
    if days >= (harvest.max_duration_days or harvest.duration_days) or extra < settings.planning_day():
        return None
    others = [
        state.as_booking(b)
        for b in state.current_rows(session, planned=True)
        if b.id != booking.id and b.first_day <= extra and b.last_day >= extra - timedelta(days=6)
    ]
    include = {b.patient for b in others} | {patient.id}
    problem = state.build_problem(session, settings.planning_day(), settings.horizon_days, include=include)
    if not problem.site.is_open(harvest.calendar, extra):
        return None
    step = next(ps for ps in problem.steps(problem.patient(patient.id)) if ps.name == harvest.name)
    load = resource_load(problem, others)
    for resource, amount, _ in step.resources:
        if load.booked(resource.id, resource.cell(extra)) + amount > problem.site.capacity_on(resource, extra):
            return None
    _edit(session, patient, "durations", dict(patient.durations or {}) | {harvest.name: days + 1}, actor)
    return extra


def _edit(session: Session, patient: PatientRow, field: str, value: Any, actor: Actor) -> None:
    """Change one field of the referral that a record makes out of date, audited as an edit."""
    before = getattr(patient, field)
    setattr(patient, field, value)
    as_json = lambda v: v.isoformat() if isinstance(v, date) else v  # noqa: E731
    record(session, actor, "patient.edit", "patient", patient.id, {field: as_json(before)}, {field: as_json(value)})


# -- when the re-plan cannot follow at once -----------------------------------------------------
def unplan_broken(work: UnitOfWork, patient_id: str, cause: str, settings: Settings, actor: Actor) -> list[str]:
    """The patient's re-plan could not run (the solver busy, the plan changing): take out of the plan
    every booking of theirs, not under way, that a rule now refuses, with the steps tied to it, so
    that no booking stays where the facts no longer allow it (a conditioning before a late product's
    return). The nightly run, or a proposal, books them again. Returns the steps taken out."""
    session = work.planning()
    patient = _active(session, patient_id)
    today = settings.planning_day()
    template = state.catalogue(session).template(patient.pathway)
    rows = state.current_rows(session, patient_id, planned=True)
    problem = state.build_problem(session, today, settings.horizon_days, include={patient_id})
    plan = Plan(cohort="site", method="current", bookings=tuple(state.as_booking(b) for b in rows))
    broken = {v.step for v in check_plan(problem, plan) if v.rule != "CAPACITY" and v.step}
    for step in list(broken):
        broken |= _dependents(template, step)
    records = state.latest_records(session, {patient_id})
    taken = [b for b in rows if b.step in broken and not state.under_way(b, today, records)]
    if not taken:
        return []
    version = services.new_version(session, work.head, "record", f"{patient_id}: to be planned again", actor, today)
    for b in taken:
        b.to_version = version.id
    _edit(session, patient, "status", "referred", actor)  # partly booked: to be planned again
    steps = sorted(b.step for b in taken)
    details = {"cause": cause, "steps": steps, "plan_version": version.id}
    session.add(EventRow(patient_id=patient_id, kind="to_be_planned", details=details, created_by=actor.name))
    record(session, actor, "plan.unplanned", "patient", patient_id, None, details)
    return steps
