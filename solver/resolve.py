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
   the others around them. This plan moves nobody who stands: it is the hint,
   and the fallback when CP-SAT finds nothing in time.
3. **Re-optimise.** The cohort model over every not-frozen step, with the move
   penalty of ``Site.stability`` on every booking of the current plan (more for
   confirmed and near-term bookings). CP-SAT's plan replaces the repair only if
   its cost plus move penalty is strictly lower, so a booking moves only when
   the plan gains more than the move costs.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import date

from pathway.cohort import FrozenBooking, Problem
from pathway.plan import Plan
from pathway.rules import RULES
from pathway.usage import resource_load
from solver.baseline import Schedule, greedy
from solver.instance import Instance, build_instance
from solver.model import CohortModelBuilder, MoveCost
from solver.objective import cost_terms
from solver.params import cp_model, new_solver
from solver.solve import SolveOptions, evaluate, groundwork, plan_from_schedules


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
    problem: Problem, current: Plan, confirmed: set[tuple[str, str]], options: SolveOptions | None = None
) -> Resolution:
    options = options or SolveOptions()
    started = time.perf_counter()
    # The nightly weighs moves against today's objective without fair waiting's delay rates: a delay
    # cost on top of the gain would move bookings already confirmed to patients (README, "Fair waiting").
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

    repair = greedy(_pinned_instance(problem, instance, standing), excluded=set(blocked))
    repair_value = evaluate(instance, repair, skip=blocked) + _move_penalty(instance, repair, was, costs)
    stats["current_objective"] = evaluate(instance, standing, skip=blocked)
    stats["repair_objective"] = repair_value

    chosen, method = repair, "repair"
    everyone = all(repair.get(p.id) is not None for p in schedulable)
    lower = {p.id: alone[p.id].cost for p in schedulable if alone[p.id].optimal}
    cohort = (
        CohortModelBuilder(instance, schedulable)
        # everyone if the repair schedules everyone; else a schedule that stands is never dropped
        .require(None if everyone else set(standing))
        .add_capacity()
        .add_cost(lower)
        .add_move_penalty({p: s for p, s in was.items() if p not in blocked}, costs)
        .add_hint(repair)
        .build()
    )
    solver = new_solver(options.time_limit, options.workers, options.reproducible)
    status = solver.solve(cohort.model)
    stats["status"] = solver.status_name(status)
    stats["solver_wall_time_s"] = round(solver.wall_time, 3)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        found = cohort.schedules(solver, instance)
        value = evaluate(instance, found, skip=blocked) + _move_penalty(instance, found, was, costs)
        stats["best_bound"] = int(solver.best_objective_bound)
        if value < repair_value:
            chosen, method = found, "cp-sat"
    else:
        stats["fallback"] = (
            f"CP-SAT returned {stats['status']} (no plan): the current plan stands, others placed greedily"
        )

    stats["method"] = method
    stats["objective"] = evaluate(instance, chosen, skip=blocked)
    stats["move_penalty"] = _move_penalty(instance, chosen, was, costs)
    stats["wall_time_s"] = round(time.perf_counter() - started, 3)
    plan = plan_from_schedules(problem, instance, "resolve", chosen, alone, blocked, stats)
    moves = _moves(current, plan)
    stats["bookings_moved"] = sum(1 for m in moves if m.to_first_day is not None)
    stats["bookings_removed"] = sum(1 for m in moves if m.to_first_day is None)
    stats["patients_moved"] = len({m.patient for m in moves})
    return Resolution(plan, moves, broken, unplanned, stats)


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
