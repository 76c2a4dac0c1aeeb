"""propose: the earliest schedule for one patient inside the current plan.

A coordinator adds (or re-plans) one patient while everyone else already has
dates. Two kinds of answer:

* the fast path: nobody else moves. Every other patient's current bookings
  (and every frozen booking) are fixed load, and the patient gets the cheapest
  schedule in the capacity left, exactly as greedy would place them
  (``solver.single.best_single_schedule`` on the residual-filtered domains);
* alternatives: schedules with a strictly earlier infusion, bought by moving
  not-frozen steps of other patients the caller allows (``movable``). Only a
  small neighbourhood is opened up: movable patients whose current bookings
  sit on the resource-days (weeks) that keep the patient from an earlier
  schedule, nearest to the patient's capacity-free dates first, at most
  ``MAX_NEIGHBOURS``. Everyone else stays fixed load. CP-SAT
  (``solver.model.CohortModelBuilder`` with its move penalty) minimises the days moved
  (disruption), then the patient's cost, subject to ``infusion <= bound``;
  each answer tightens the bound to the day before its infusion.

Every option is a valid plan together with the current bookings of the others
(with its moves applied): the moved patients keep their own rules (domains and
lags) and stay scheduled.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from pathway.cohort import FrozenBooking, Problem
from pathway.dates import say_day
from pathway.plan import Booking, Plan
from solver.baseline import Residual, Schedule, residual_after_frozen
from solver.instance import Instance, PatientSpec, build_instance, resource_cells
from solver.model import CohortModelBuilder
from solver.objective import CostTerms, cost_terms, hinge_bound
from solver.params import cp_model, new_solver
from solver.single import best_single_schedule
from solver.solve import blocking_cells, resource_usage, unschedulable_alone

MAX_NEIGHBOURS = 12  # other patients opened up for the alternatives' solves
WORKERS = 2
MIN_SOLVE_S = 0.05  # do not start a CP-SAT solve with less time than this left
WINDOW_BEFORE = 14  # days before the capacity-free start of a step searched for blocking resource-days
MAX_SLIP_DAYS = 14  # an alternative never puts a moved patient's infusion later than this


@dataclass(frozen=True)
class Move:
    """One booking of another patient that an alternative moves."""

    patient: str
    step: str
    from_first_day: date
    from_last_day: date
    to_first_day: date
    to_last_day: date


@dataclass(frozen=True)
class Option:
    bookings: tuple[Booking, ...]  # the proposed patient's bookings, every step
    infusion: date  # first infusion step's first day
    moves: tuple[Move, ...]  # () for the fast path
    cost: int  # the patient's own cost (solver.objective.cost_terms)
    disruption: int  # total days other patients' bookings move (sum |shift|); 0 for the fast path


@dataclass(frozen=True)
class Proposal:
    """The answer of ``propose``.

    ``fast`` is the patient's cheapest schedule (solver.objective) in the
    capacity the others leave. Cost and infusion date almost always agree, but
    an earlier infusion that costs the patient more (say, a week more between
    collection and infusion) may fit as well: it then comes back as an
    alternative that moves nobody (``moves == ()``, disruption 0).
    """

    patient: str
    fast: Option | None  # earliest schedule without moving anyone; None if none fits
    alternatives: tuple[Option, ...]  # strictly earlier than ``fast`` (any, if fast is None); least disruption first
    reason: str  # when fast is None: "RULE: why"; else ""
    wall_time_s: float


def propose(
    problem: Problem,
    patient_id: str,
    current: Plan,
    movable: Collection[str] = (),
    alternatives: int = 3,
    time_limit: float = 2.0,
    max_slip_days: int = MAX_SLIP_DAYS,
    movable_from: date | None = None,
) -> Proposal:
    """The fast path and up to ``alternatives`` earlier options for ``patient_id``.

    ``problem`` holds every patient of the site; ``current`` the bookings of the
    others (the patient's own bookings in it are ignored; its frozen steps in
    ``problem`` are kept). Bookings of patients not in ``problem`` are ignored.
    ``movable``: ids of patients whose not-frozen steps an alternative may move;
    only those no more urgent than the patient are moved, and none of them gets
    an infusion more than ``max_slip_days`` later than it has now, and no moved
    step lands before ``movable_from`` (the end of a freeze window).
    ``time_limit`` bounds the whole call: the alternatives' search stops when
    it is spent (the fast path, tens of milliseconds, is never cut short).
    Raises KeyError if ``patient_id`` is not in ``problem``.
    """
    started = time.perf_counter()
    deadline = started + time_limit
    problem.patient(patient_id)  # KeyError for an unknown patient
    booked = _booked(problem, current, patient_id)

    instance = build_instance(_fixed_problem(problem, patient_id, booked, free=frozenset()))
    spec = next(s for s in instance.patients if s.id == patient_id)
    terms = cost_terms(spec, problem.site.objective)

    def done(fast: Option | None, options: tuple[Option, ...] = (), reason: str = "") -> Proposal:
        return Proposal(patient_id, fast, options, reason, round(time.perf_counter() - started, 3))

    alone_domains = [s.starts for s in spec.steps]
    alone = best_single_schedule(spec, alone_domains, terms)
    if alone is None:
        blocked = unschedulable_alone(problem, dataclasses.replace(instance, patients=[spec]), {patient_id: None})
        refusal = blocked[patient_id]
        return done(None, reason=f"{refusal.rule}: {refusal.reason}")
    alone_starts = alone[0]

    residual = residual_after_frozen(instance)
    domains = [s.starts if s.frozen is not None else residual.allowed(spec, s.index) for s in spec.steps]
    found = best_single_schedule(spec, domains, terms)
    fast = _option(instance, spec, terms, found[0]) if found is not None else None
    reason = "" if fast is not None else _capacity_reason(instance, spec, alone_starts)

    options: tuple[Option, ...] = ()
    urgency = problem.site.objective.urgency_weights
    mine = urgency[problem.patient(patient_id).urgency]
    candidates = [
        m
        for m in _scheduled(problem, current, booked, [m for m in movable if m != patient_id])
        if urgency[problem.patient(m).urgency] <= mine  # never bump a more urgent patient
    ]
    if alternatives > 0 and candidates:
        infusion = spec.steps[spec.infusion]
        limit = found[0][spec.infusion] - 1 if found is not None else (infusion.starts or [-1])[-1]
        # The earliest infusion the patient's own rules allow (alone on the site): no option can beat it.
        earliest = best_single_schedule(spec, alone_domains, CostTerms({spec.infusion: 1}, 0, spec.infusion))
        if earliest is not None and limit >= earliest[0][spec.infusion]:
            hi = found[0] if found is not None else None
            own_frozen = {p.id: set(problem.frozen(p)) for p in problem.patients}
            neighbours = _neighbourhood(instance, spec, residual, alone_starts, hi, candidates, own_frozen)
            if neighbours and time.perf_counter() + MIN_SOLVE_S < deadline:
                start = found[0] if found is not None else alone_starts
                lower = terms.evaluate(alone_starts) if alone[1] else 0
                options = AlternativeSearch(
                    problem=problem,
                    patient_id=patient_id,
                    booked=booked,
                    neighbours=neighbours,
                    hint_starts=start,
                    lower_bound=lower,
                    latest_infusion=limit,
                    earliest_infusion=earliest[0][spec.infusion],
                    wanted=alternatives,
                    deadline=deadline,
                    max_slip_days=max_slip_days,
                    movable_from=movable_from,
                ).options()
    return done(fast, options, reason)


# -- the current plan ------------------------------------------------------------
def _booked(problem: Problem, current: Plan, patient_id: str) -> dict[str, dict[str, date]]:
    """Other patient id -> step -> first day, from the current plan (first booking of a step wins)."""
    known = {p.id for p in problem.patients}
    out: dict[str, dict[str, date]] = {}
    for b in current.bookings:
        if b.patient != patient_id and b.patient in known:
            out.setdefault(b.patient, {}).setdefault(b.step, b.first_day)
    return out


def _scheduled(problem: Problem, current: Plan, booked: dict[str, dict[str, date]], ids: Collection[str]) -> list[str]:
    """Those of ``ids`` the current plan schedules: every step booked, not listed unschedulable."""
    patients = {p.id: p for p in problem.patients}
    refused = {u.patient for u in current.unschedulable}
    return [
        pid
        for pid in dict.fromkeys(ids)
        if pid in booked
        and pid not in refused
        and all(s.name in booked[pid] for s in problem.template(patients[pid]).steps)
    ]


def _fixed_problem(
    problem: Problem, patient_id: str, booked: dict[str, dict[str, date]], free: Collection[str]
) -> Problem:
    """The problem with every other patient's current bookings frozen (fixed load).

    The patient and the ``free`` patients keep only their own frozen steps.
    Others with no current bookings keep their frozen steps as load (none: left
    out, they take no capacity). A frozen step's own day wins over the plan's.
    """
    patients = []
    for p in problem.patients:
        days = booked.get(p.id)
        if p.id == patient_id or p.id in free or not days:
            if p.id == patient_id or p.id in free or p.frozen:
                patients.append(p)
            continue
        fixed = {**days, **problem.frozen(p)}
        frozen = tuple(FrozenBooking.model_construct(step=s, first_day=d) for s, d in fixed.items())
        patients.append(p.model_copy(update={"frozen": frozen}))
    return dataclasses.replace(problem, cohort=problem.cohort.model_copy(update={"patients": tuple(patients)}))


# -- options ----------------------------------------------------------------------
def _bookings(instance: Instance, spec: PatientSpec, starts: list[int]) -> tuple[Booking, ...]:
    return tuple(
        Booking(
            patient=spec.id,
            step=step.name,
            first_day=instance.date_of(starts[step.index]),
            last_day=instance.date_of(starts[step.index] + step.duration - 1),
        )
        for step in spec.steps
    )


def _option(
    instance: Instance, spec: PatientSpec, terms: CostTerms, starts: list[int], moves=(), disruption=0
) -> Option:
    return Option(
        bookings=_bookings(instance, spec, starts),
        infusion=instance.date_of(starts[spec.infusion]),
        moves=tuple(moves),
        cost=terms.evaluate(starts),
        disruption=disruption,
    )


def _capacity_reason(instance: Instance, spec: PatientSpec, alone_starts: list[int]) -> str:
    """Why the patient does not fit without moving anyone, as solve() words a CAPACITY refusal."""
    others = dataclasses.replace(instance, patients=[s for s in instance.patients if s.id != spec.id])
    cells = blocking_cells(instance, spec, Schedule(alone_starts, 0), resource_usage(others, {}))
    free_infusion = instance.date_of(alone_starts[spec.infusion])
    return (
        "CAPACITY: no free capacity inside the horizon without moving other patients; alone on the site the "
        f"infusion could be {say_day(free_infusion)}, but " + ("; ".join(cells) or "the site is full")
    )


# -- alternatives -------------------------------------------------------------------
def _neighbourhood(
    instance: Instance,
    spec: PatientSpec,
    residual: Residual,
    alone: list[int],
    fast: list[int] | None,
    candidates: list[str],
    own_frozen: dict[str, set[str]],
) -> list[str]:
    """Movable patients on the resource cells that keep ``spec`` from an earlier schedule, nearest first.

    A cell is blocking if some start of a patient step, between a fortnight
    before its capacity-free start and its fast-path start, needs it and the
    residual capacity (everyone else fixed) cannot take it. A candidate's
    distance is the least gap in days between such a start and the step's
    capacity-free start, over the blocking cells its not-frozen steps use.
    """
    blocking: dict[tuple[str, int], int] = {}  # (resource, cell) -> distance to the capacity-free schedule
    for step in spec.steps:
        if step.frozen is not None or not step.uses:
            continue
        lo = alone[step.index] - WINDOW_BEFORE
        hi = fast[step.index] if fast is not None else step.starts[-1]
        for d in step.starts:
            if d < lo or d > hi:
                continue
            distance = abs(d - alone[step.index])
            for rid, cell, amount in resource_cells(instance, step, d):
                if residual.left[rid][cell] < amount and distance < blocking.get((rid, cell), 1 << 30):
                    blocking[rid, cell] = distance
    if not blocking:
        return []

    specs = {s.id: s for s in instance.patients}
    ranked = []
    for pid in candidates:
        other = specs.get(pid)
        if other is None:
            continue
        distances = [
            blocking[rid, cell]
            for step in other.steps
            if step.frozen is not None and step.name not in own_frozen.get(pid, ())
            for rid, cell, _ in resource_cells(instance, step, step.frozen)
            if (rid, cell) in blocking
        ]
        if distances:
            ranked.append((min(distances), -len(distances), pid))
    ranked.sort()
    return [pid for _, _, pid in ranked[:MAX_NEIGHBOURS]]


@dataclass(frozen=True)
class AlternativeSearch:
    """The search for earlier options for ``patient_id`` that move some ``neighbours``' bookings."""

    problem: Problem
    patient_id: str
    booked: dict[str, dict[str, date]]  # other patient id -> step -> first day in the current plan
    neighbours: list[str]  # the patients whose bookings an option may move
    hint_starts: list[int]  # the patient's schedule to start from
    lower_bound: int  # the patient's capacity-free cost
    latest_infusion: int  # every option infuses on or before this day
    earliest_infusion: int  # no option can infuse before this day (alone on the site)
    wanted: int  # at most this many options
    deadline: float  # time.perf_counter() at which to stop
    max_slip_days: int = MAX_SLIP_DAYS
    movable_from: date | None = None

    def options(self) -> tuple[Option, ...]:
        return _alternatives(self)


def _alternatives(search: AlternativeSearch) -> tuple[Option, ...]:
    """Options with infusion <= ``latest_infusion``, each strictly earlier than the one before, least
    disruption first."""
    problem, patient_id, booked, neighbours = search.problem, search.patient_id, search.booked, search.neighbours
    max_slip_days, movable_from = search.max_slip_days, search.movable_from
    instance = build_instance(_fixed_problem(problem, patient_id, booked, free=set(neighbours)))
    specs = {s.id: s for s in instance.patients}
    spec = specs[patient_id]
    others = [specs[n] for n in neighbours]
    current = {
        o.id: [step.frozen if step.frozen is not None else instance.day_of(booked[o.id][step.name]) for step in o.steps]
        for o in others
    }
    hint = {o.id: Schedule(current[o.id], 0) for o in others} | {patient_id: Schedule(search.hint_starts, 0)}
    cohort = (
        CohortModelBuilder(instance, [spec] + others)
        .require()
        .add_capacity()
        .add_cost({patient_id: search.lower_bound})
        .add_move_penalty(current)  # shifts measured, weighed by the objective below
        .add_hint(hint)
        .build()
    )
    model = cohort.model
    for pv in cohort.patients[1:]:
        infusion_start = pv.starts[pv.spec.infusion]
        if not isinstance(infusion_start, int):
            model.add(infusion_start <= current[pv.spec.id][pv.spec.infusion] + max_slip_days)
        if movable_from is not None:
            for step, var in zip(pv.spec.steps, pv.starts, strict=True):
                if not isinstance(var, int):
                    # a step may stay where it is, or move to a day after the freeze window
                    allowed = {d for d in step.starts if d >= instance.day_of(movable_from)} | {
                        current[pv.spec.id][step.index]
                    }
                    model.add_linear_expression_in_domain(var, cp_model.Domain.from_values(sorted(allowed)))
    own = cohort.patients[0]
    terms = cost_terms(spec, problem.site.objective)
    # Lexicographic: every day moved weighs more than the patient's whole cost range.
    model.minimize((_max_cost(spec, terms) + 1) * cohort.disruption + own.cost)
    infusion = own.starts[spec.infusion]

    options: list[Option] = []
    bound = search.latest_infusion
    while len(options) < search.wanted and bound >= search.earliest_infusion:
        left = search.deadline - time.perf_counter()
        if left < MIN_SOLVE_S:
            break
        model.add(infusion <= bound)
        solver = new_solver(left, workers=WORKERS)
        # A small model: the default presolve loops cost more than the search (same answers, measured).
        solver.parameters.max_presolve_iterations = 1
        status = solver.solve(model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            break
        values = {pv.spec.id: pv.values(solver) for pv in cohort.patients}
        moves, disruption = [], 0
        for other in others:
            for step in other.steps:
                was, now = current[other.id][step.index], values[other.id][step.index]
                if now != was:
                    disruption += abs(now - was)
                    moves.append(
                        Move(
                            patient=other.id,
                            step=step.name,
                            from_first_day=instance.date_of(was),
                            from_last_day=instance.date_of(was + step.duration - 1),
                            to_first_day=instance.date_of(now),
                            to_last_day=instance.date_of(now + step.duration - 1),
                        )
                    )
        starts = values[patient_id]
        options.append(_option(instance, spec, terms, starts, moves, disruption))
        bound = starts[spec.infusion] - 1
        model.clear_hints()
        for pv in cohort.patients:
            for var, value in zip(pv.starts, values[pv.spec.id], strict=True):
                if not isinstance(var, int):
                    model.add_hint(var, value)
    options.sort(key=lambda o: (o.disruption, o.cost, o.infusion))
    return tuple(options)


def _max_cost(spec: PatientSpec, terms: CostTerms) -> int:
    """An upper bound on the patient's cost over its domains."""

    def far(i: int, c: int) -> int:
        step = spec.steps[i]
        days = [step.frozen] if step.frozen is not None else step.starts
        return max(c * days[0], c * days[-1]) if days else 0

    linear = terms.constant + sum(far(i, c) for i, c in terms.coefficients.items())
    domains = [[s.frozen] if s.frozen is not None else s.starts for s in spec.steps]
    return max(0, linear + sum(h.weight * hinge_bound(h, domains) for h in terms.hinges))
