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
  ``MAX_NEIGHBOURS``. Everyone else stays fixed load. Each option minimises
  the days moved (disruption), then the patient's cost, subject to
  ``infusion <= bound``; each answer tightens the bound to the day before its
  infusion. By ``method``:

  - "colgen" (the default), the column generation pipeline
    (``solver.colgen``): a moved patient costs only its disruption (a cost per
    day moved in the exact pricing) and keeps to its allowed days (where it
    is now, or after the freeze window; its infusion no more than
    ``max_slip_days`` later); the patient's infusion domain ends at the bound.
    No plan with the patient is known at a new bound, so it starts
    "unscheduled" at an artificial penalty above every plan that schedules
    everyone. What the pipeline does not prove in its share of the time
    (``COLGEN_SHARE``; typically "no earlier option exists", which its LP
    relaxation cannot show), CP-SAT polishes with its plan as the hint and
    its bound as the objective's lower bound;
  - "cp-sat": the CP-SAT model (``solver.model.CohortModelBuilder`` with its
    move penalty) alone.

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
from typing import Literal

from pathway.cohort import FrozenBooking, Problem
from pathway.dates import say_day
from pathway.plan import Booking, Plan
from solver.baseline import Residual, Schedule, residual_after_frozen
from solver.colgen import Override, column_generation
from solver.instance import Instance, PatientSpec, build_instance, resource_cells
from solver.model import CohortModelBuilder
from solver.objective import CostTerms, MoveCost, StepMove, cost_terms, hinge_bound
from solver.params import REPRODUCIBLE_WALL_FACTOR, cp_model, new_solver
from solver.single import best_single_schedule
from solver.solve import blocking_cells, resource_usage, unschedulable_alone

MAX_NEIGHBOURS = 12  # other patients opened up for the alternatives' solves
WORKERS = 2
MIN_SOLVE_S = 0.05  # do not start a search for an option (or its CP-SAT polish) with less time than this left
WINDOW_BEFORE = 14  # days before the capacity-free start of a step searched for blocking resource-days
MAX_SLIP_DAYS = 14  # an alternative never puts a moved patient's infusion later than this
COLGEN_SHARE = 0.2  # of the time left, for the pipeline's search of one option; CP-SAT polishes in the rest

Method = Literal["colgen", "cp-sat"]


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
    method: Method = "colgen",
    reproducible: bool = False,
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
    ``method``: the alternatives' search, "colgen" (the column generation
    pipeline, CP-SAT polishing what it does not prove in time) or "cp-sat"
    (CP-SAT alone). ``reproducible``: the same input gives the same options
    on any machine load (``time_limit`` is then CP-SAT's deterministic time,
    and the clock only a safety net, ``REPRODUCIBLE_WALL_FACTOR`` times it).
    Raises KeyError if ``patient_id`` is not in ``problem``.
    """
    started = time.perf_counter()
    deadline = started + time_limit * (REPRODUCIBLE_WALL_FACTOR if reproducible else 1)
    problem.patient(patient_id)  # KeyError for an unknown patient
    booked = _booked(problem, current, patient_id)

    instance = build_instance(_fixed_problem(problem, patient_id, booked, free=frozenset()))
    spec = next(s for s in instance.patients if s.id == patient_id)
    terms = cost_terms(spec, problem.site.objective)

    def done(fast: Option | None, options: tuple[Option, ...] = (), reason: str = "") -> Proposal:
        return Proposal(patient_id, fast, options, reason, round(time.perf_counter() - started, 3))

    alone_domains = [s.starts for s in spec.steps]
    alone_starts = best_single_schedule(spec, alone_domains, terms)
    if alone_starts is None:
        blocked = unschedulable_alone(problem, dataclasses.replace(instance, patients=[spec]), {patient_id: None})
        refusal = blocked[patient_id]
        return done(None, reason=f"{refusal.rule}: {refusal.reason}")

    residual = residual_after_frozen(instance)
    domains = [s.starts if s.frozen is not None else residual.allowed(spec, s.index) for s in spec.steps]
    found = best_single_schedule(spec, domains, terms)
    fast = _option(instance, spec, terms, found) if found is not None else None
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
        limit = found[spec.infusion] - 1 if found is not None else (infusion.starts or [-1])[-1]
        # The earliest infusion the patient's own rules allow (alone on the site): no option can beat it.
        earliest = best_single_schedule(spec, alone_domains, CostTerms({spec.infusion: 1}, 0, spec.infusion))
        if earliest is not None and limit >= earliest[spec.infusion]:
            hi = found
            own_frozen = {p.id: set(problem.frozen(p)) for p in problem.patients}
            neighbours = _neighbourhood(instance, spec, residual, alone_starts, hi, candidates, own_frozen)
            if neighbours and time.perf_counter() + MIN_SOLVE_S < deadline:
                start = found if found is not None else alone_starts
                lower = terms.evaluate(alone_starts)  # the patient's exact best alone
                options = AlternativeSearch(
                    problem=problem,
                    patient_id=patient_id,
                    booked=booked,
                    neighbours=neighbours,
                    hint_starts=start,
                    lower_bound=lower,
                    latest_infusion=limit,
                    earliest_infusion=earliest[spec.infusion],
                    wanted=alternatives,
                    deadline=deadline,
                    max_slip_days=max_slip_days,
                    movable_from=movable_from,
                    method=method,
                    reproducible=reproducible,
                    time_limit=time_limit,
                    fixed=instance,
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
    method: Method = "colgen"
    reproducible: bool = False  # CP-SAT on deterministic time (``time_limit``), HiGHS's rounds to their end
    time_limit: float = 2.0  # seconds: CP-SAT's deterministic-time limit in reproducible mode
    fixed: Instance | None = None  # the instance with every other patient fixed, if already built (propose's)

    def options(self) -> tuple[Option, ...]:
        return _alternatives(self)


def _alternatives(search: AlternativeSearch) -> tuple[Option, ...]:
    """Options with infusion <= ``latest_infusion``, each strictly earlier than the one before, least
    disruption first."""
    hood = _Neighbourhood.of(search)
    cp_sat = _CpSatSearch(hood, search)
    options: list[Option] = []
    bound = search.latest_infusion
    while len(options) < search.wanted and bound >= search.earliest_infusion:
        if search.deadline - time.perf_counter() < MIN_SOLVE_S:
            break
        if search.method == "colgen":
            values = _colgen_plan(hood, search, bound, cp_sat)
        else:
            values = cp_sat.plan(bound)
        if values is None:
            break
        options.append(hood.option(values))
        bound = values[search.patient_id][hood.spec.infusion] - 1
    options.sort(key=lambda o: (o.disruption, o.cost, o.infusion))
    return tuple(options)


@dataclass
class _Neighbourhood:
    """The alternatives' problem: the patient and the ``others`` (the neighbours) free, everyone else fixed
    load. Its objective is lexicographic: ``weight`` per day any other patient's booking moves (more than
    the patient's whole cost range), plus the patient's own cost."""

    instance: Instance
    spec: PatientSpec
    others: list[PatientSpec]
    current: dict[str, list[int]]  # neighbour id -> the start day of each step in the current plan
    terms: CostTerms  # the patient's
    weight: int
    max_slip_days: int
    movable_from: int | None  # day index: no moved step starts before it

    @classmethod
    def of(cls, search: AlternativeSearch) -> _Neighbourhood:
        problem, booked = search.problem, search.booked
        instance = _free_neighbours(search)
        specs = {s.id: s for s in instance.patients}
        spec = specs[search.patient_id]
        others = [specs[n] for n in search.neighbours]
        current = {
            o.id: [
                step.frozen if step.frozen is not None else instance.day_of(booked[o.id][step.name]) for step in o.steps
            ]
            for o in others
        }
        terms = cost_terms(spec, problem.site.objective)
        movable_from = None if search.movable_from is None else instance.day_of(search.movable_from)
        return cls(
            instance, spec, others, current, terms, _max_cost(spec, terms) + 1, search.max_slip_days, movable_from
        )

    def allowed(self, other: PatientSpec) -> list[list[int]]:
        """A neighbour's start days per step: where it is now, or (moved) after the freeze window, its
        infusion no more than ``max_slip_days`` later than now; a frozen step on its day."""
        was = self.current[other.id]
        out = []
        for step in other.steps:
            if step.frozen is not None:
                out.append([step.frozen])
                continue
            days = [
                d for d in step.starts if d == was[step.index] or self.movable_from is None or d >= self.movable_from
            ]
            if step.index == other.infusion:
                days = [d for d in days if d <= was[step.index] + self.max_slip_days]
            out.append(days)
        return out

    def disruption(self, values: dict[str, list[int]]) -> int:
        """Days the neighbours' bookings move, in all."""
        return sum(abs(a - b) for o in self.others for a, b in zip(values[o.id], self.current[o.id], strict=True))

    def objective(self, values: dict[str, list[int]]) -> int:
        return self.weight * self.disruption(values) + self.terms.evaluate(values[self.spec.id])

    def option(self, values: dict[str, list[int]]) -> Option:
        instance, moves = self.instance, []
        for other in self.others:
            for step in other.steps:
                was, now = self.current[other.id][step.index], values[other.id][step.index]
                if now != was:
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
        starts = values[self.spec.id]
        return _option(instance, self.spec, self.terms, starts, moves, self.disruption(values))


def _free_neighbours(search: AlternativeSearch) -> Instance:
    """The instance with the neighbours free and everyone else fixed. From ``search.fixed``, only the
    neighbours' specs are built again (a spec depends on its own patient and the site alone)."""
    free = set(search.neighbours)
    problem = _fixed_problem(search.problem, search.patient_id, search.booked, free=free)
    if search.fixed is None:
        return build_instance(problem)
    neighbours = problem.cohort.model_copy(update={"patients": tuple(p for p in problem.patients if p.id in free)})
    rebuilt = {s.id: s for s in build_instance(dataclasses.replace(problem, cohort=neighbours)).patients}
    return dataclasses.replace(
        search.fixed, problem=problem, patients=[rebuilt.get(s.id, s) for s in search.fixed.patients]
    )


class _CpSatSearch:
    """The CP-SAT model of the neighbourhood (``method="cp-sat"``, and the pipeline's polisher), built on
    first use. Its constraints only tighten from one option to the next (a lower infusion bound; a lower
    bound on the objective proven at a looser one), so one model serves every option."""

    def __init__(self, hood: _Neighbourhood, search: AlternativeSearch):
        self.hood, self.search = hood, search
        self._model = None
        self._cohort = None
        self._objective = None

    def _build(self):
        hood, search = self.hood, self.search
        patient_id = hood.spec.id
        hint = {o.id: Schedule(hood.current[o.id], 0) for o in hood.others} | {
            patient_id: Schedule(search.hint_starts, 0)
        }
        cohort = (
            CohortModelBuilder(hood.instance, [hood.spec] + hood.others)
            .require()
            .add_capacity()
            .add_cost({patient_id: search.lower_bound})
            .add_move_penalty(hood.current)  # shifts measured, weighed by the objective below
            .add_hint(hint)
            .build()
        )
        model = cohort.model
        for pv in cohort.patients[1:]:
            for var, days in zip(pv.starts, hood.allowed(pv.spec), strict=True):
                if not isinstance(var, int):
                    model.add_linear_expression_in_domain(var, cp_model.Domain.from_values(days))
        # Lexicographic: every day moved weighs more than the patient's whole cost range.
        self._objective = hood.weight * cohort.disruption + cohort.patients[0].cost
        model.minimize(self._objective)
        self._cohort = cohort
        self._model = model

    def plan(
        self, bound: int, hint: dict[str, list[int]] | None = None, lower: int | None = None
    ) -> dict[str, list[int]] | None:
        """The best plan with the patient's infusion on or before ``bound`` (None if none is found in
        time); ``hint``: a plan to start from, ``lower``: a proven lower bound on the objective."""
        if self._model is None:
            self._build()
        model, cohort, search = self._model, self._cohort, self.search
        model.add(cohort.patients[0].starts[self.hood.spec.infusion] <= bound)
        if lower is not None:
            model.add(self._objective >= lower)
        if hint is not None:
            model.clear_hints()
            for pv in cohort.patients:
                for var, value in zip(pv.starts, hint[pv.spec.id], strict=True):
                    if not isinstance(var, int):
                        model.add_hint(var, value)
        left = search.deadline - time.perf_counter()
        # Reproducible: deterministic time, never what the clock has left (the deadline is the safety net).
        solver = new_solver(search.time_limit if search.reproducible else left, WORKERS, search.reproducible)
        # A small model: the default presolve loops cost more than the search (same answers, measured).
        solver.parameters.max_presolve_iterations = 1
        status = solver.solve(model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        values = {pv.spec.id: pv.values(solver) for pv in cohort.patients}
        model.clear_hints()
        for pv in cohort.patients:
            for var, value in zip(pv.starts, values[pv.spec.id], strict=True):
                if not isinstance(var, int):
                    model.add_hint(var, value)
        return values


def _colgen_plan(
    hood: _Neighbourhood, search: AlternativeSearch, bound: int, cp_sat: _CpSatSearch
) -> dict[str, list[int]] | None:
    """The best plan with the patient's infusion on or before ``bound``, by column generation (the
    neighbours cost their disruption only, in their allowed days; the patient its own cost). The
    patient starts "unscheduled" at an artificial penalty above every plan that schedules everyone: no
    plan with it is known before the search. What the pipeline does not prove in time, CP-SAT polishes."""
    spec, others = hood.spec, hood.others
    per_day = MoveCost(per_day=hood.weight)
    overrides: dict[str, Override] = {}
    start: dict[str, Schedule | None] = {spec.id: None}
    most_moved = 0
    for other in others:
        allowed = hood.allowed(other)
        was = hood.current[other.id]
        moves = tuple(StepMove(s.index, was[s.index], per_day) for s in other.steps if s.frozen is None)
        overrides[other.id] = Override(CostTerms({}, 0, other.infusion, moves=moves), allowed)
        most_moved += sum(
            max(abs(days[0] - w), abs(days[-1] - w)) for days, w in zip(allowed, was, strict=True) if days
        )
        # The current plan is the start, where today's rules still allow it.
        keeps = all(w in days for days, w in zip(allowed, was, strict=True))
        start[other.id] = Schedule(was, 0) if keeps else None
    domains = [[s.frozen] if s.frozen is not None else s.starts for s in spec.steps]
    domains[spec.infusion] = [d for d in domains[spec.infusion] if d <= bound]
    overrides[spec.id] = Override(hood.terms, domains)
    artificial = hood.weight * (most_moved + 1)  # more than any plan that schedules everyone
    now = time.perf_counter()
    found = column_generation(
        hood.instance,
        [spec, *others],
        start,
        artificial,
        now,
        now + COLGEN_SHARE * (search.deadline - now),
        search.reproducible,
        overrides=overrides,
        first_stage=False,
        exact_phase=False,
    )
    schedules = found.schedules
    values = None
    if all(schedules[s.id] is not None for s in (spec, *others)):
        values = {pid: schedule.starts for pid, schedule in schedules.items()}
    if found.bound >= artificial:  # proven: every plan leaves someone out
        return None
    if found.proven or search.deadline - time.perf_counter() < MIN_SOLVE_S:
        return values
    polished = cp_sat.plan(bound, hint=values, lower=found.bound)
    if polished is not None and (values is None or hood.objective(polished) < hood.objective(values)):
        return polished
    return values


def _max_cost(spec: PatientSpec, terms: CostTerms) -> int:
    """An upper bound on the patient's cost over its domains."""

    def far(i: int, c: int) -> int:
        step = spec.steps[i]
        days = [step.frozen] if step.frozen is not None else step.starts
        return max(c * days[0], c * days[-1]) if days else 0

    linear = terms.constant + sum(far(i, c) for i, c in terms.coefficients.items())
    domains = [[s.frozen] if s.frozen is not None else s.starts for s in spec.steps]
    return max(0, linear + sum(h.weight * hinge_bound(h, domains) for h in terms.hinges))
