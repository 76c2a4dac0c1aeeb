"""The independent rule checker: judges any Plan against a Problem.

Every hard rule of the domain is one plain function here, written per booking
and per date from the catalogue, the site and the cohort. Nothing in this
module uses solver code: a plan from CP-SAT, from the greedy baseline, or typed
by hand is judged the same way.

Each rule function takes ``(problem, plan)`` and returns a list of
``Violation``; ``check_plan`` runs them all. Messages are sentences for a
transplant coordinator: they name the patient, the step, the dates
("Tue 05 Jan 2027") and the numbers involved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta

from pathway.catalogue import Lag, Model, StepKind, product_ready_step
from pathway.cohort import Patient, PatientStep, Problem
from pathway.dates import IsoDate, say_day
from pathway.plan import Booking, Plan
from pathway.usage import resource_load


class Violation(Model):
    """One broken hard rule: which rule, whom, which step, which day, and why in words."""

    rule: str
    patient: str | None = None
    step: str | None = None
    day: IsoDate | None = None
    message: str


RuleFunction = Callable[[Problem, Plan], list[Violation]]


# -- wording -----------------------------------------------------------------
_day = say_day


def _days(n: int) -> str:
    return f"{n} day" if abs(n) == 1 else f"{n} days"


def _signed(n: int) -> str:
    """3 -> '3 days after', -2 -> '2 days before', 0 -> '0 days after'."""
    return f"{_days(abs(n))} {'before' if n < 0 else 'after'}"


def _allowed(lag: Lag) -> str:
    low, high = lag.min, lag.max
    if high is None:
        return f"at least {_signed(low)}"
    if low == high:
        return f"exactly {_signed(low)}"
    if low >= 0:
        return f"between {low} and {_days(high)} after"
    if high <= 0:
        return f"between {-high} and {_days(-low)} before"
    return f"between {_signed(low)} and {_signed(high)}"


def _step(name: str) -> str:
    """A step name in prose: 'donor_collection' -> 'donor collection'."""
    return name.replace("_", " ")


def _anchor_name(lag: Lag) -> str:
    return f"the {lag.anchor} of {_step(lag.after)}"


def _anchor_text(lag: Lag, other: Booking) -> str:
    if lag.anchor == "start":
        return f"{_anchor_name(lag)} ({_day(other.first_day)})"
    return f"{_anchor_name(lag)} ({_day(other.last_day + timedelta(days=1))}, the day after its last day)"


# -- reading the plan ----------------------------------------------------------
def _cohort_patients(problem: Problem) -> dict[str, Patient]:
    return {p.id: p for p in problem.patients}


def _patient_steps(problem: Problem, patient: Patient) -> dict[str, PatientStep]:
    return {ps.name: ps for ps in problem.steps(patient)}


# The last plan read by ``_booked`` (problem, plan, bookings): most rules read the same plan in turn.
# Both are immutable, and held here, so the same objects mean the same bookings.
_last_booked: tuple[Problem, Plan, dict[str, dict[str, Booking]]] | None = None


def _booked(problem: Problem, plan: Plan) -> dict[str, dict[str, Booking]]:
    """patient id -> step name -> booking, for bookings of known patients and steps (read only).

    When a step is booked twice the first booking is judged here; the second one
    is reported by UNKNOWN_BOOKING.
    """
    global _last_booked
    last = _last_booked
    if last is not None and last[0] is problem and last[1] is plan:
        return last[2]
    patients = _cohort_patients(problem)
    out: dict[str, dict[str, Booking]] = defaultdict(dict)
    for booking in plan.bookings:
        patient = patients.get(booking.patient)
        if patient is None:
            continue
        if booking.step not in problem.step_names(patient):
            continue
        out[booking.patient].setdefault(booking.step, booking)
    _last_booked = (problem, plan, dict(out))
    return _last_booked[2]


def _offset(lag: Lag, this: Booking, other: Booking) -> int:
    anchor = other.first_day if lag.anchor == "start" else other.last_day + timedelta(days=1)
    return (this.first_day - anchor).days


def _lag_violations(problem: Problem, plan: Plan, tag: str, code: str, what: str) -> list[Violation]:
    """Every catalogue lag tagged ``tag``, checked on the booked dates."""
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        bookings = booked.get(patient.id, {})
        for step in problem.template(patient).steps:
            this = bookings.get(step.name)
            if this is None:
                continue
            for lag in step.lags:
                other = bookings.get(lag.after)
                if lag.rule != tag or other is None:
                    continue
                offset = _offset(lag, this, other)
                if offset < lag.min or (lag.max is not None and offset > lag.max):
                    found.append(
                        Violation(
                            rule=code,
                            patient=patient.id,
                            step=step.name,
                            day=this.first_day,
                            message=(
                                f"Patient {patient.id}: {_step(step.name)} starts {_day(this.first_day)}, "
                                f"{_signed(offset)} {_anchor_text(lag, other)}; {what} allows "
                                f"{_allowed(lag)} {_anchor_name(lag)}." + (f" ({lag.note})" if lag.note else "")
                            ),
                        )
                    )
    return found


# -- 1. UNKNOWN_BOOKING ----------------------------------------------------------
def unknown_booking(problem: Problem, plan: Plan) -> list[Violation]:
    """Bookings for unknown patients or steps, and a step booked twice.

    Solver: the model has one start variable per step of each patient's own
    template (``solver.instance``), so a plan it makes books each step once.
    """
    found = []
    patients = _cohort_patients(problem)
    seen: set[tuple[str, str]] = set()
    for booking in plan.bookings:
        patient = patients.get(booking.patient)
        if patient is not None and booking.step in problem.step_names(patient):
            if (booking.patient, booking.step) not in seen:
                seen.add((booking.patient, booking.step))
                continue
        dates = f"from {_day(booking.first_day)} to {_day(booking.last_day)}"
        if patient is None:
            message = (
                f"The plan books {_step(booking.step)} {dates} for patient {booking.patient}, "
                f"who is not in cohort {problem.cohort.name}."
            )
        elif booking.step not in problem.step_names(patient):
            message = (
                f"The plan books step {booking.step} {dates} for patient {patient.id}, "
                f"but pathway {patient.pathway} has no such step."
            )
        else:
            message = f"Patient {patient.id} has {_step(booking.step)} booked more than once (again {dates})."
        found.append(
            Violation(
                rule="UNKNOWN_BOOKING",
                patient=booking.patient,
                step=booking.step,
                day=booking.first_day,
                message=message,
            )
        )
    for entry in plan.unschedulable:
        if entry.patient not in patients:
            found.append(
                Violation(
                    rule="UNKNOWN_BOOKING",
                    patient=entry.patient,
                    message=(
                        f"The plan lists patient {entry.patient} as unschedulable, "
                        f"but that patient is not in cohort {problem.cohort.name}."
                    ),
                )
            )
    return found


# -- 2. STEP_MISSING ----------------------------------------------------------------
def step_missing(problem: Problem, plan: Plan) -> list[Violation]:
    """A scheduled patient has every step booked; anyone else is listed unschedulable.

    An unschedulable patient keeps only the bookings that are frozen (already
    done or fixed): the plan may not book anything new for them.

    Solver: one presence literal per patient; every step is placed when it is
    true (``solver.model``), and an unscheduled patient keeps only its frozen
    bookings (``solver.solve``).
    """
    found = []
    booked = _booked(problem, plan)
    unschedulable = {u.patient for u in plan.unschedulable}
    for patient in problem.patients:
        own = booked.get(patient.id, {})
        planned = set(own) - set(problem.frozen(patient))
        if patient.id in unschedulable:
            if planned:
                found.append(
                    Violation(
                        rule="STEP_MISSING",
                        patient=patient.id,
                        message=(
                            f"Patient {patient.id} is listed as unschedulable but has new bookings "
                            f"({', '.join(sorted(_step(n) for n in planned))}); the plan must do one or the other."
                        ),
                    )
                )
        elif own:
            for step in problem.template(patient).steps:
                if step.name not in own:
                    found.append(
                        Violation(
                            rule="STEP_MISSING",
                            patient=patient.id,
                            step=step.name,
                            message=(
                                f"Patient {patient.id} is scheduled on {patient.pathway}, "
                                f"but {_step(step.name)} is not booked."
                            ),
                        )
                    )
        else:
            found.append(
                Violation(
                    rule="STEP_MISSING",
                    patient=patient.id,
                    message=(
                        f"Patient {patient.id} ({patient.pathway}) has no bookings "
                        "and is not listed as unschedulable with a reason."
                    ),
                )
            )
    return found


# -- 3. STEP_DURATION -----------------------------------------------------------------
def step_duration(problem: Problem, plan: Plan) -> list[Violation]:
    """Each booking lasts exactly the patient's resolved duration of its step.

    Solver: a booking's last day is its start plus the resolved duration
    (``Problem.steps``, ``solver.solve``); durations are never variables.
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        for ps in problem.steps(patient):
            booking = booked.get(patient.id, {}).get(ps.name)
            if booking is None:
                continue
            length = (booking.last_day - booking.first_day).days + 1
            if length != ps.duration:
                found.append(
                    Violation(
                        rule="STEP_DURATION",
                        patient=patient.id,
                        step=ps.name,
                        day=booking.first_day,
                        message=(
                            f"Patient {patient.id}: {_step(ps.name)} is booked from {_day(booking.first_day)} to "
                            f"{_day(booking.last_day)}, which is {_days(length)}, but it lasts {_days(ps.duration)}."
                        ),
                    )
                )
    return found


# -- 4. STEP_LAG -------------------------------------------------------------------------
def step_lag(problem: Problem, plan: Plan) -> list[Violation]:
    """Generic catalogue lags between steps (``rule: step_lag``). Solver: ``solver.lags.add_lags``."""
    return _lag_violations(problem, plan, "step_lag", "STEP_LAG", "the pathway")


# -- 5. INFUSION_WINDOW -------------------------------------------------------------------
def infusion_window(problem: Problem, plan: Plan) -> list[Violation]:
    """The product's infusion window after conditioning (``rule: infusion_window`` lags).

    Solver: ``solver.lags.add_lags``; a given conditioning whose window can no
    longer be met is set aside and given again (``pathway.inflight``).
    """
    return _lag_violations(problem, plan, "infusion_window", "INFUSION_WINDOW", "the product's infusion window")


# -- 6. RELEASE_BEFORE_CONDITIONING ----------------------------------------------------------
def release_before_conditioning(problem: Problem, plan: Plan) -> list[Violation]:
    """Never start conditioning before the product is received and released at the centre.

    Solver: the catalogue refuses a conditioning step without its
    ``release_before_conditioning`` lag (``pathway.catalogue``), and the lag is a
    model constraint (``solver.lags``). Here the rule is judged by step kind too,
    so a hand-made plan or a bad catalogue cannot slip past.
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        bookings = booked.get(patient.id, {})
        template = problem.template(patient)
        for i, step in enumerate(template.steps):
            if step.kind != StepKind.conditioning or step.name not in bookings:
                continue
            ready = product_ready_step(template, i)
            if ready is None or ready.name not in bookings:
                continue
            conditioning, product = bookings[step.name], bookings[ready.name]
            if conditioning.first_day <= product.last_day:
                if ready.kind == StepKind.release:
                    what = "received and released"
                else:
                    what = "processed, stored and released by the lab"
                found.append(
                    Violation(
                        rule="RELEASE_BEFORE_CONDITIONING",
                        patient=patient.id,
                        step=step.name,
                        day=conditioning.first_day,
                        message=(
                            f"Patient {patient.id}: {_step(step.name)} starts {_day(conditioning.first_day)}, "
                            f"but the product is only {what} ({_step(ready.name)}) on {_day(product.last_day)}; "
                            "conditioning must never start before the product is released, so not before "
                            f"{_day(product.last_day + timedelta(days=1))}."
                        ),
                    )
                )
    found += _lag_violations(
        problem,
        plan,
        "release_before_conditioning",
        "RELEASE_BEFORE_CONDITIONING",
        "the release-before-conditioning rule",
    )
    return found


# -- 7. GRAFT_AGE ------------------------------------------------------------------------
def graft_age(problem: Problem, plan: Plan) -> list[Violation]:
    """A fresh graft is infused within ``graft_max_age_hours`` of its collection, never before it.

    Solver: the template's ``graft_age`` lag (the catalogue refuses a fresh graft
    without it), through ``solver.lags.add_lags``; the preferred age is a cost.
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        template = problem.template(patient)
        max_hours = template.graft_max_age_hours
        if max_hours is None:
            continue
        bookings = booked.get(patient.id, {})
        for i, step in enumerate(template.steps):
            if step.kind != StepKind.infusion or step.name not in bookings:
                continue
            collections = [s for s in template.steps[:i] if s.kind == StepKind.donor_collection]
            if not collections or collections[-1].name not in bookings:
                continue
            collection_step = collections[-1]
            infusion, collection = bookings[step.name], bookings[collection_step.name]
            hours = (infusion.first_day - collection.first_day).days * 24
            if infusion.first_day < collection.first_day:
                message = (
                    f"Patient {patient.id}: {_step(step.name)} on {_day(infusion.first_day)} is before the graft "
                    f"is collected ({_step(collection_step.name)} starts {_day(collection.first_day)})."
                )
            elif hours > max_hours:
                message = (
                    f"Patient {patient.id}: the fresh graft collected from {_day(collection.first_day)} would be "
                    f"{hours} hours old at {_step(step.name)} on {_day(infusion.first_day)}; "
                    f"the limit is {max_hours} hours."
                )
            else:
                continue
            found.append(
                Violation(rule="GRAFT_AGE", patient=patient.id, step=step.name, day=infusion.first_day, message=message)
            )
    found += _lag_violations(problem, plan, "graft_age", "GRAFT_AGE", "the fresh graft's age limit")
    return found


# -- 8. CALENDAR -----------------------------------------------------------------------------
def calendar(problem: Problem, plan: Plan) -> list[Violation]:
    """The start day (or every day) of a step is open on the step's site calendar.

    Solver: a domain filter (``solver.instance``: allowed start days).
    """
    found = []
    site = problem.site
    booked = _booked(problem, plan)
    for patient in problem.patients:
        for step in problem.template(patient).steps:
            booking = booked.get(patient.id, {}).get(step.name)
            if booking is None:
                continue
            days = [booking.first_day] if step.calendar_applies_to == "start" else booking.days()
            for day in days:
                if not site.is_open(step.calendar, day):
                    found.append(
                        Violation(
                            rule="CALENDAR",
                            patient=patient.id,
                            step=step.name,
                            day=day,
                            message=(
                                f"Patient {patient.id}: {_step(step.name)} is booked on {_day(day)}, but that day is "
                                f"{site.closed_reason(step.calendar, day)}."
                            ),
                        )
                    )
    return found


# -- 9. CAPACITY --------------------------------------------------------------------------------
def capacity(problem: Problem, plan: Plan) -> list[Violation]:
    """Daily resources per day and weekly resources per ISO week stay within capacity.

    Solver: one cumulative per resource (``solver.model``), residual capacity in
    the greedy baseline; frozen bookings are always counted.
    """
    site = problem.site
    load = resource_load(problem, plan.bookings)  # every booking of a known step, duplicates included
    found = []
    for resource, day, booked, limit, users in load.overbooked(site):
        resource_id = resource.id
        when = resource.say_cell(day)
        reason = site.capacity_reason(resource, day)
        who = ", ".join(f"{u.patient} ({u.step})" for u in sorted(users, key=lambda u: (u.patient, u.step)))
        found.append(
            Violation(
                rule="CAPACITY",
                day=day,
                message=(
                    f"{resource_id} is over capacity {when}: {booked} booked against a capacity of {limit}"
                    + (f" {resource.unit}" if resource.unit else "")
                    + (f" (capacity changed: {reason})" if reason else "")
                    + f". Patients involved: {who}."
                ),
            )
        )
    return found


# -- 10. EARLIEST_START ---------------------------------------------------------------------------
def earliest_start(problem: Problem, plan: Plan) -> list[Violation]:
    """No step that is not frozen starts before approval, earliest_start or the horizon start.

    Solver: a domain filter (``solver.instance``).
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        earliest = problem.earliest_day(patient)
        frozen = set(problem.frozen(patient))
        if earliest == patient.earliest_start:
            why = "the patient's earliest start"
        elif earliest == patient.approval_date:
            why = "approval"
        else:
            why = "the start of the planning horizon"
        for name, booking in booked.get(patient.id, {}).items():
            if name in frozen or booking.first_day >= earliest:
                continue
            found.append(
                Violation(
                    rule="EARLIEST_START",
                    patient=patient.id,
                    step=name,
                    day=booking.first_day,
                    message=(
                        f"Patient {patient.id}: {_step(name)} starts {_day(booking.first_day)}, "
                        f"{_days((earliest - booking.first_day).days)} before {why} on {_day(earliest)}."
                    ),
                )
            )
    return found


# -- 11. WASHOUT ------------------------------------------------------------------------------------
def washout(problem: Problem, plan: Plan) -> list[Violation]:
    """Steps of a washout rule's kind start at least ``days`` after the last dose of its agent.

    Solver: a domain filter (``solver.instance``).
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        bookings = booked.get(patient.id, {})
        for rule in problem.washouts(patient):
            last_dose = patient.last_doses.get(rule.agent)
            if last_dose is None:
                continue
            first_allowed = last_dose + timedelta(days=rule.days)
            for step in problem.template(patient).steps_of(rule.before):
                booking = bookings.get(step.name)
                if booking is None or booking.first_day >= first_allowed:
                    continue
                found.append(
                    Violation(
                        rule="WASHOUT",
                        patient=patient.id,
                        step=step.name,
                        day=booking.first_day,
                        message=(
                            f"Patient {patient.id}: {_step(step.name)} starts {_day(booking.first_day)}, only "
                            f"{_days((booking.first_day - last_dose).days)} after the last dose of {rule.agent} on "
                            f"{_day(last_dose)}; it needs {_days(rule.days)}, so not before {_day(first_allowed)}."
                            + (f" ({rule.note})" if rule.note else "")
                        ),
                    )
                )
    return found


# -- 12. BLACKOUT ------------------------------------------------------------------------------------
def blackout(problem: Problem, plan: Plan) -> list[Violation]:
    """Steps needing the patient in person avoid the patient's blackout days.

    Solver: a domain filter (``solver.instance``).
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        bookings = booked.get(patient.id, {})
        for step in problem.template(patient).steps:
            booking = bookings.get(step.name)
            if booking is None or not step.patient_present:
                continue
            for blackout_range in patient.blackouts:
                clash = [d for d in booking.days() if blackout_range.covers(d)]
                if not clash:
                    continue
                reason = f" ({blackout_range.reason})" if blackout_range.reason else ""
                found.append(
                    Violation(
                        rule="BLACKOUT",
                        patient=patient.id,
                        step=step.name,
                        day=clash[0],
                        message=(
                            f"Patient {patient.id} cannot attend from {_day(blackout_range.first_day)} to "
                            f"{_day(blackout_range.last_day)}{reason}, but {_step(step.name)} needs them in person on "
                            f"{_days(len(clash))} of it, from {_day(clash[0])}."
                        ),
                    )
                )
    return found


# -- 13. FROZEN_CHANGED ---------------------------------------------------------------------------------
def frozen_changed(problem: Problem, plan: Plan) -> list[Violation]:
    """Every frozen booking stays in the plan on its frozen first day: those given, and the steps
    held with them because they are already under way (``pathway.inflight``).

    Solver: a frozen step is a constant, not a variable (``solver.instance``,
    ``solver.model``), and its load is fixed capacity.
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        held = problem.held(patient)
        for step, first_day in held.frozen.items():
            booking = booked.get(patient.id, {}).get(step)
            if booking is not None and booking.first_day == first_day:
                continue
            now = f"moved to {_day(booking.first_day)}" if booking is not None else "missing from the plan"
            why = held.derived.get(step, "done or confirmed by a coordinator")
            found.append(
                Violation(
                    rule="FROZEN_CHANGED",
                    patient=patient.id,
                    step=step,
                    day=first_day,
                    message=f"Patient {patient.id}: {_step(step)} is fixed on {_day(first_day)} ({why}) but is {now}.",
                )
            )
    return found


# -- 14. IN_FLIGHT ---------------------------------------------------------------------------------------
def in_flight(problem: Problem, plan: Plan) -> list[Violation]:
    """A patient in flight is never listed unschedulable: infused before the horizon, or given
    conditioning before it (lymphodepleted, waiting for the infusion).

    Solver: the steps tied to a frozen one by a fixed lag are held with it
    (``pathway.inflight``); after an infusion no blackout removes a day from the
    rest of the pathway (``solver.instance``); a conditioning whose infusion
    window can no longer be met is given again.
    """
    found = []
    unschedulable = {u.patient: u for u in plan.unschedulable}
    for patient in problem.patients:
        entry = unschedulable.get(patient.id)
        if entry is None:
            continue
        frozen = problem.frozen(patient)
        steps = problem.template(patient).steps
        start = problem.horizon.start
        infused = [s.name for s in steps if s.kind == StepKind.infusion and s.name in frozen and frozen[s.name] < start]
        conditioned = [
            s.name for s in steps if s.kind == StepKind.conditioning and s.name in frozen and frozen[s.name] < start
        ]
        for step, what in ((infused, "was infused"), (conditioned, "had conditioning")):
            if step:
                found.append(
                    Violation(
                        rule="IN_FLIGHT",
                        patient=patient.id,
                        step=step[0],
                        day=frozen[step[0]],
                        message=(
                            f"Patient {patient.id} {what} on {_day(frozen[step[0]])} but is listed as unschedulable "
                            f"({entry.rule}); a patient in flight keeps every step that follows."
                        ),
                    )
                )
                break
    return found


# -- 15. PRESENCE -------------------------------------------------------------------------------------------
def presence(problem: Problem, plan: Plan) -> list[Violation]:
    """No blackout inside the days after an infusion when the patient must attend or stay near the centre.

    Catalogue: ``presence`` per template (the product's label). Solver: the
    infusion's start days whose window meets a blackout are taken out of its
    domain (``solver.instance``).
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        bookings = booked.get(patient.id, {})
        for need in problem.template(patient).presence:
            anchor = bookings.get(need.after)
            if anchor is None:
                continue
            last = anchor.first_day + timedelta(days=need.days - 1)
            for away in patient.blackouts:
                if away.last_day < anchor.first_day or away.first_day > last:
                    continue
                first_clash = max(away.first_day, anchor.first_day)
                offset = (first_clash - anchor.first_day).days
                found.append(
                    Violation(
                        rule="PRESENCE",
                        patient=patient.id,
                        step=need.after,
                        day=anchor.first_day,
                        message=(
                            f"Patient {patient.id}: {_step(need.after)} on {_day(anchor.first_day)}, but "
                            f"{away.describe()}, from day {offset} after it, inside {need.phrase()} "
                            f"(to {_day(last)})." + (f" ({need.note})" if need.note else "")
                        ),
                    )
                )
    return found


# -- 16. RISK_WINDOW ------------------------------------------------------------------------------------------
def risk_window(problem: Problem, plan: Plan) -> list[Violation]:
    """The high-risk window (ICU back-up) covers ``risk_window_days`` from each infusion, every dose included.

    Catalogue: a template with ``risk_window_days`` is refused unless its
    monitoring step covers every dose at its latest (``pathway.catalogue``);
    the step's fixed lag and duration then hold it in the solver.
    """
    found = []
    booked = _booked(problem, plan)
    for patient in problem.patients:
        template = problem.template(patient)
        if template.risk_window_days is None:
            continue
        bookings = booked.get(patient.id, {})
        windows = [bookings[s.name] for s in template.steps_of(StepKind.monitoring) if s.name in bookings]
        for step in template.steps_of(StepKind.infusion):
            infusion = bookings.get(step.name)
            if infusion is None:
                continue
            needed = [infusion.first_day + timedelta(days=i) for i in range(template.risk_window_days)]
            uncovered = [d for d in needed if not any(w.first_day <= d <= w.last_day for w in windows)]
            if uncovered:
                found.append(
                    Violation(
                        rule="RISK_WINDOW",
                        patient=patient.id,
                        step=step.name,
                        day=uncovered[0],
                        message=(
                            f"Patient {patient.id}: the {template.risk_window_days} days from {_step(step.name)} on "
                            f"{_day(infusion.first_day)} need a high-risk place (ICU back-up), but "
                            f"{_days(len(uncovered))} of them have none, from {_day(uncovered[0])}."
                        ),
                    )
                )
    return found


RULES: dict[str, RuleFunction] = {
    "UNKNOWN_BOOKING": unknown_booking,
    "STEP_MISSING": step_missing,
    "STEP_DURATION": step_duration,
    "STEP_LAG": step_lag,
    "INFUSION_WINDOW": infusion_window,
    "RELEASE_BEFORE_CONDITIONING": release_before_conditioning,
    "GRAFT_AGE": graft_age,
    "CALENDAR": calendar,
    "CAPACITY": capacity,
    "EARLIEST_START": earliest_start,
    "WASHOUT": washout,
    "BLACKOUT": blackout,
    "FROZEN_CHANGED": frozen_changed,
    "IN_FLIGHT": in_flight,
    "PRESENCE": presence,
    "RISK_WINDOW": risk_window,
}


def check_plan(problem: Problem, plan: Plan) -> list[Violation]:
    """Every violation of every hard rule, sorted by (day, patient, rule); [] means a clean plan."""
    found = [v for rule in RULES.values() for v in rule(problem, plan)]
    return sorted(found, key=lambda v: (v.day or date.min, v.patient or "", v.rule, v.step or "", v.message))
