"""resolve: re-optimise a whole site's plan while moving as little as possible (the nightly job).

Input: the Problem (every active patient; what has started, what lies in the
freeze window and products already collected are frozen steps), the plan
people know now (``current``) and which of its bookings were confirmed to the
patient. Output: a ``Resolution`` with the plan to publish and every booking
it moves.

1. **What still stands.** The checker judges the current plan against today's
   problem. A patient whose every step is booked and whose bookings break no
   rule has a *standing* schedule; everyone else (new referrals, bookings
   released after a deferral or a failed product, bookings a closure broke)
   needs planning.
2. **Repair.** Standing schedules are pinned and the greedy baseline places
   the others around them. This plan moves nobody who stands: it is the start
   (and the hint), and the fallback when nothing better is found in time.
3. **Re-optimise** every not-frozen step, with the move penalty of
   ``Site.stability`` on every booking of the current plan (more for confirmed
   and near-term bookings). A standing schedule is never dropped (everyone is
   kept if the repair schedules everyone). By ``method``:

   * "colgen" (the default), the solve pipeline (``solver.colgen``): each
     booking's move penalty is a cost per step and start day in the exact
     pricing, frozen steps a domain of one day, and each patient's current
     schedule ("keep as is") a first column; a patient who must stay scheduled
     has no "unscheduled" column. What it has not proven in time, CP-SAT
     polishes with its plan as the hint and its bound as the objective's lower
     bound, as ``solve`` does;
   * "cp-sat": the CP-SAT model alone, with the repair as its hint.

   The new plan replaces the repair only if its cost plus move penalty is
   strictly lower, so a booking moves only when the plan gains more than the
   move costs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import date
from typing import Literal

from pathway.cohort import FrozenBooking, Problem
from pathway.plan import Plan
from pathway.rules import RULES
from pathway.usage import resource_load
from solver.baseline import Schedule, greedy
from solver.colgen import Stability, column_generation
from solver.instance import Instance, build_instance
from solver.model import CohortModelBuilder, MoveCost
from solver.objective import StepMove, cost_terms, unscheduled_penalty
from solver.params import REPRODUCIBLE_WALL_FACTOR, cp_model, new_solver
from solver.solve import (
    MIN_POLISH_SECONDS,
    SolveOptions,
    colgen_stats,
    evaluate,
    groundwork,
    plan_from_schedules,
)

Method = Literal["colgen", "cp-sat"]


@dataclasses.dataclass(frozen=True)
class Move:
    """A booking of the current plan that the new plan puts elsewhere (or drops)."""

    patient: str
    step: str
    from_first_day: date
    from_last_day: date
    to_first_day: date | None  # None: the patient is no longer scheduled
    to_last_day: date | None


@dataclasses.dataclass
class Resolution:
    plan: Plan
    moves: list[Move]
    broken: dict[str, list[str]]  # patient -> the rules its current bookings break today
    unplanned: list[str]  # patients with no standing schedule before the run (new, released or broken)
    stats: dict


def resolve(
    problem: Problem,
    current: Plan,
    confirmed: set[tuple[str, str]],
    options: SolveOptions | None = None,
    method: Method = "colgen",
) -> Resolution:
    options = options or SolveOptions()
    started = time.perf_counter()
    # The nightly weighs moves against today's objective without fair waiting's delay rates. Those
    # count each day of delay beyond the capacity-free date, and a booking confirmed weeks ago is often
    # weeks beyond today's capacity-free date (capacity it used has since been freed): its delay cost
    # would then outweigh the cost of moving it, and confirmed bookings would move every night (a
    # confirmed booking 28 days late must stay put: tests/test_resolve.py). README, "Fair waiting".
    base = groundwork(problem, delay_costs=False)
    instance, alone, blocked, schedulable = base.instance, base.alone, base.blocked, base.schedulable
    weights = problem.site.objective
    stats: dict = {"patients": len(instance.patients)}

    broken = _broken(problem, current)
    was = _current_starts(instance, current)
    standing = {
        spec.id: Schedule(was[spec.id], cost_terms(spec, weights).evaluate(was[spec.id]))
        for spec in instance.patients
        if spec.id not in broken and spec.id not in blocked and None not in was.get(spec.id, [None])
    }
    unplanned = sorted(p.id for p in instance.patients if p.id not in standing)
    costs = _move_costs(instance, problem, current, confirmed)

    def value(schedules: dict[str, Schedule | None]) -> int:
        """The re-solve's objective: the plan's cost plus its move penalty."""
        return evaluate(instance, schedules, skip=blocked) + _move_penalty(instance, schedules, was, costs)

    repair = greedy(_pinned_instance(problem, instance, standing), excluded=set(blocked))
    repair_value = value(repair)
    stats["current_objective"] = evaluate(instance, standing, skip=blocked)
    stats["repair_objective"] = repair_value

    # Everyone if the repair schedules everyone; else a schedule that stands is never dropped.
    everyone = all(repair.get(p.id) is not None for p in schedulable)
    search = _Search(
        instance,
        schedulable,
        alone,
        {p: s for p, s in was.items() if p not in blocked},
        costs,
        frozenset(p.id for p in schedulable) if everyone else frozenset(standing),
        options,
        stats,
        started,
        value,
        # The solvers' bounds are on the patients who can be scheduled; the others add what dropping costs.
        _move_penalty(instance, {}, {p: s for p, s in was.items() if p in blocked}, costs),
    )
    found = search.colgen(repair) if method == "colgen" else search.cp_sat(repair)
    if found is None:
        stats["fallback"] += ": the current plan stands, others placed greedily"

    chosen = repair
    stats["method"] = "repair"
    if found is not None and value(found) < repair_value:
        chosen = found
        stats["method"] = stats.get("polished_by", method)
    stats["objective"] = evaluate(instance, chosen, skip=blocked)
    stats["move_penalty"] = _move_penalty(instance, chosen, was, costs)
    stats["objective_with_moves"] = stats["objective"] + stats["move_penalty"]
    if "best_bound" in stats:
        stats["gap"] = _gap(stats["objective_with_moves"], stats["best_bound"])
    stats["wall_time_s"] = round(time.perf_counter() - started, 3)
    stats.setdefault("time_to_plan_s", stats["wall_time_s"])
    stats.setdefault("time_to_bound_s", stats["wall_time_s"])
    plan = plan_from_schedules(problem, instance, "resolve", chosen, alone, blocked, stats)
    moves = _moves(current, plan)
    stats["bookings_moved"] = sum(1 for m in moves if m.to_first_day is not None)
    stats["bookings_removed"] = sum(1 for m in moves if m.to_first_day is None)
    stats["patients_moved"] = len({m.patient for m in moves})
    return Resolution(plan, moves, broken, unplanned, stats)


def _gap(objective: int, bound: int) -> float:
    return round((objective - bound) / objective, 6) if objective > 0 else 0.0


@dataclasses.dataclass
class _Search:
    """The re-optimisation of step 3 (module docstring) over ``schedulable``: ``current`` starts and
    their move ``costs``, the ``required`` patients, and the ``stats`` to report in. ``value``: the
    re-solve's objective of a plan; ``dropped``: its part the search cannot change (patients who
    cannot be scheduled, whose bookings are dropped), added to every bound reported."""

    instance: Instance
    schedulable: list
    alone: dict[str, Schedule | None]
    current: dict[str, list[int | None]]
    costs: dict[str, dict[int, MoveCost]]
    required: frozenset[str]
    options: SolveOptions
    stats: dict
    started: float
    value: Callable[[dict[str, Schedule | None]], int]
    dropped: int

    def colgen(self, start: dict[str, Schedule | None]) -> dict[str, Schedule | None]:
        """Column generation from ``start`` (the repair), polished by CP-SAT if not proven in time."""
        options, stats = self.options, self.stats
        limit = options.time_limit * (REPRODUCIBLE_WALL_FACTOR if options.reproducible else 1)
        moves = {
            pid: tuple(StepMove(index, self.current[pid][index], cost) for index, cost in steps.items())
            for pid, steps in self.costs.items()
            if pid in self.current
        }
        found = column_generation(
            self.instance,
            self.schedulable,
            start,
            unscheduled_penalty(self.instance),
            self.started,
            self.started + limit,
            options.reproducible,
            stability=Stability(_not_frozen(self.instance, moves), self.required),
        )
        stats.update(colgen_stats(found))
        stats["best_bound"] += self.dropped
        schedules = found.schedules
        remaining = limit - (time.perf_counter() - self.started)
        if found.proven or remaining < MIN_POLISH_SECONDS:
            return schedules
        # Reproducible: CP-SAT's limit is deterministic time, never what the clock has left.
        polish = options if options.reproducible else dataclasses.replace(options, time_limit=remaining)
        polished = self.cp_sat(schedules, polish, lower_bound=found.bound, report=False)
        if polished is not None and self.value(polished) < self.value(schedules):
            stats["time_to_plan_s"] = round(time.perf_counter() - self.started, 3)
            stats["polished_by"] = "cp-sat"
            schedules = polished
        if self.value(schedules) <= stats["best_bound"]:
            stats["status"] = "OPTIMAL"
        return schedules

    def cp_sat(
        self,
        hint: dict[str, Schedule | None],
        options: SolveOptions | None = None,
        lower_bound: int | None = None,
        report: bool = True,
    ) -> dict[str, Schedule | None] | None:
        """The CP-SAT model with the move penalty, from ``hint``; None if it finds no plan. ``lower_bound``:
        a proven bound on its objective. ``report``: its status and bound are the run's (else only a
        better bound is)."""
        options, stats = options or self.options, self.stats
        lower = {p.id: self.alone[p.id].cost for p in self.schedulable}
        cohort = (
            CohortModelBuilder(self.instance, self.schedulable)
            .require(self.required)
            .add_capacity()
            .add_cost(lower)
            .add_move_penalty(self.current, self.costs)
            .add_hint(hint)
            .build(lower_bound)
        )
        solver = new_solver(options.time_limit, options.workers, options.reproducible)
        status = solver.solve(cohort.model)
        stats["solver_wall_time_s"] = round(solver.wall_time, 3)
        if report:
            stats["status"] = solver.status_name(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            stats["fallback"] = f"CP-SAT returned {solver.status_name(status)} (no plan)"
            return None
        bound = int(solver.best_objective_bound) + self.dropped
        if report or bound > stats.get("best_bound", 0):
            stats["best_bound"], stats["bound_method"] = bound, "cp-sat"
            stats["time_to_bound_s"] = round(time.perf_counter() - self.started, 3)
        return cohort.schedules(solver, self.instance)


def _not_frozen(instance: Instance, moves: dict[str, tuple[StepMove, ...]]) -> dict[str, tuple[StepMove, ...]]:
    """Frozen steps are fixed (a domain of one day): moving them is not a choice, so it costs nothing."""
    specs = {spec.id: spec for spec in instance.patients}
    return {pid: tuple(m for m in steps if specs[pid].steps[m.step].frozen is None) for pid, steps in moves.items()}


def _broken(problem: Problem, current: Plan) -> dict[str, list[str]]:
    """Patient -> the rules its current bookings break today. A CAPACITY violation is the site's,
    not one patient's: every patient booked in the overbooked cell is counted (the move
    penalty then decides which of them moves)."""
    out: dict[str, set[str]] = {}
    for name, rule in RULES.items():
        if name == "CAPACITY":
            continue  # the site's violation, with no patient: the walk below names them
        for violation in rule(problem, current):
            if violation.patient:
                out.setdefault(violation.patient, set()).add(violation.rule)
    for *_, uses in resource_load(problem, current.bookings).overbooked(problem.site):
        for use in uses:
            out.setdefault(use.patient, set()).add("CAPACITY")
    return {p: sorted(rules) for p, rules in out.items()}


def _current_starts(instance: Instance, current: Plan) -> dict[str, list[int | None]]:
    """Patient -> start day of each step in the current plan (None: not booked)."""
    booked = {(b.patient, b.step): b.first_day for b in current.bookings}
    out = {}
    for spec in instance.patients:
        starts = [booked.get((spec.id, step.name)) for step in spec.steps]
        if any(d is not None for d in starts):
            out[spec.id] = [None if d is None else instance.day_of(d) for d in starts]
    return out


def _move_costs(
    instance: Instance, problem: Problem, current: Plan, confirmed: set[tuple[str, str]]
) -> dict[str, dict[int, MoveCost]]:
    """Per patient and step index: what moving its current booking costs (``Site.stability``)."""
    stability = problem.site.stability
    booked = {(b.patient, b.step): b.first_day for b in current.bookings}
    today = problem.horizon.start
    out: dict[str, dict[int, MoveCost]] = {}
    for spec in instance.patients:
        for step in spec.steps:
            first = booked.get((spec.id, step.name))
            if first is None:
                continue
            factor = stability.factor((spec.id, step.name) in confirmed, (first - today).days)
            out.setdefault(spec.id, {})[step.index] = MoveCost(
                stability.per_day * factor, stability.per_booking * factor
            )
    return out


def _move_penalty(instance: Instance, schedules: dict[str, Schedule | None], was, costs) -> int:
    """The move penalty of ``schedules`` against the current starts, as the model counts it."""
    total = 0
    for spec in instance.patients:
        schedule = schedules.get(spec.id)
        if spec.id not in was:
            continue
        for step in spec.steps:
            before = was[spec.id][step.index]
            if before is None or step.frozen is not None:
                continue
            cost = costs.get(spec.id, {}).get(step.index, MoveCost())
            if schedule is None:  # dropped: costs what moving it would, at least
                total += cost.per_move
            elif schedule.starts[step.index] != before:
                total += cost.per_move + cost.per_day * abs(schedule.starts[step.index] - before)
    return total


def _pinned_instance(problem: Problem, instance: Instance, standing: dict[str, Schedule]) -> Instance:
    """The instance with every standing schedule frozen where it is."""
    patients = []
    specs = {spec.id: spec for spec in instance.patients}
    for patient in problem.patients:
        schedule = standing.get(patient.id)
        if schedule is not None:
            spec = specs[patient.id]
            frozen = tuple(
                FrozenBooking(step=s.name, first_day=instance.date_of(schedule.starts[s.index])) for s in spec.steps
            )
            patient = patient.model_copy(update={"frozen": frozen})
        patients.append(patient)
    cohort = problem.cohort.model_copy(update={"patients": tuple(patients)})
    return build_instance(dataclasses.replace(problem, cohort=cohort))


def _moves(current: Plan, new: Plan) -> list[Move]:
    after = {(b.patient, b.step): b for b in new.bookings}
    out = []
    for b in current.bookings:
        a = after.get((b.patient, b.step))
        if a is not None and (a.first_day, a.last_day) == (b.first_day, b.last_day):
            continue
        out.append(
            Move(b.patient, b.step, b.first_day, b.last_day, a.first_day if a else None, a.last_day if a else None)
        )
    return sorted(out, key=lambda m: (m.patient, m.from_first_day, m.step))
