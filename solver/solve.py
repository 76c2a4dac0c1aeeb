"""solve(Problem) -> Plan: the one entry point of the solver package.

Steps: build the integer-day instance; find each patient's capacity-free
schedule (patients with none are unschedulable, with the rule that blocks
them); run the greedy baseline; then, by method:

* "colgen" (the default): column generation from the greedy plan
  (``solver.colgen``): a proven bound, a plan, usually a proof of optimality;
  what it has not proven in time, CP-SAT polishes with the plan as its hint
  and the bound as the objective's lower bound;
* "cp-sat": the CP-SAT model alone, with the greedy plan as its hint;
* "greedy", "capacity-free": the baselines.

Keep whichever plan is better (never worse than greedy); report per-patient
outcomes and why a date is later than it could be.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pathway.cohort import Problem
from pathway.dates import say_day, say_span
from pathway.plan import Booking, PatientOutcome, Plan, Unschedulable
from solver.baseline import Schedule, capacity_free, greedy
from solver.instance import Instance, PatientSpec, build_instance, resource_cells
from solver.objective import cost_terms, unscheduled_penalty

if TYPE_CHECKING:
    from solver.colgen import ColgenResult, TailGuard

Method = Literal["colgen", "cp-sat", "greedy", "capacity-free"]
METHODS: tuple[str, ...] = ("colgen", "cp-sat", "greedy", "capacity-free")
MAX_DELAY_REASONS = 6
MIN_POLISH_SECONDS = 0.5  # below this, CP-SAT would stop in presolve: the column generation's plan stands


@dataclasses.dataclass
class SolveOptions:
    time_limit: float = 30.0
    workers: int = 8  # the full CP-SAT portfolio; measured better than 2 on this 2-core machine
    reproducible: bool = False  # one worker, deterministic time limit: same input -> same plan


@dataclasses.dataclass
class Groundwork:
    """What every whole-cohort solve starts from: the instance, each patient's capacity-free
    schedule, who cannot be scheduled even alone (with the rule), and everyone else."""

    instance: Instance
    alone: dict[str, Schedule | None]
    blocked: dict[str, Unschedulable]
    schedulable: list[PatientSpec]


def groundwork(problem: Problem, delay_costs: bool = True) -> Groundwork:
    """``delay_costs``: count fair waiting's delay rates in every patient's cost (``solver.objective``),
    from their capacity-free infusion day."""
    instance = build_instance(problem)
    alone = capacity_free(instance)
    for spec in instance.patients:
        free = alone[spec.id]
        spec.free_infusion = free.starts[spec.infusion] if free is not None and delay_costs else None
    blocked = unschedulable_alone(problem, instance, alone)
    return Groundwork(instance, alone, blocked, [p for p in instance.patients if alone[p.id] is not None])


def solve(problem: Problem, method: Method = "colgen", options: SolveOptions | None = None) -> Plan:
    options = options or SolveOptions()
    started = time.perf_counter()
    base = groundwork(problem)
    instance, alone, blocked, schedulable = base.instance, base.alone, base.blocked, base.schedulable
    stats: dict = {"patients": len(instance.patients)}

    if method == "capacity-free":
        schedules = alone
        stats["status"] = "RELAXATION"
    else:
        schedules = greedy(instance, excluded=set(blocked), alone=alone)
        stats["greedy_objective"] = evaluate(instance, schedules, skip=blocked)
        stats["status"] = "GREEDY"
        # Fair waiting (the site's waiting policy): the optimisers keep the tail no longer than greedy's.
        optimise = method in ("cp-sat", "colgen")
        guard = tail_guard(schedulable, schedules) if optimise and problem.site.objective.waiting.tail_guard else None
        if guard is not None:
            stats["tail_guard"] = guard.say()
        if method == "cp-sat":
            schedules = _solve_cp_sat(instance, schedulable, alone, schedules, options, stats, guard=guard)
        elif method == "colgen":
            schedules = _solve_colgen(instance, schedulable, alone, schedules, options, stats, started, guard)

    # Patients who cannot be scheduled even alone are outside every method's
    # optimisation: they are reported, not counted in the objective or bound.
    stats["capacity_free_objective"] = sum(alone[p.id].cost for p in schedulable)
    stats["objective"] = evaluate(instance, schedules, skip=blocked)
    # The relaxation bounds the objective only where every single-patient solve was proven optimal.
    relaxation_bound = stats["capacity_free_objective"]  # every schedule alone is exact (the dynamic programme)
    if relaxation_bound > stats.get("best_bound", 0) or "best_bound" not in stats:
        stats["best_bound"], stats["bound_method"] = relaxation_bound, "capacity-free"
    stats.setdefault("bound_method", "cp-sat")
    stats["gap"] = _gap(stats["objective"], stats["best_bound"])
    # Over-subscribed cohorts: the objective is almost all unscheduled penalty, so say first how many the
    # plan leaves out for capacity against how many the bound proves must be (each costs the penalty,
    # which is more than every schedule together).
    stats["unscheduled_for_capacity"] = sum(schedules.get(p.id) is None for p in schedulable)
    stats["unscheduled_proven_minimum"] = max(
        stats.get("unscheduled_proven_minimum", 0), stats["best_bound"] // unscheduled_penalty(instance)
    )
    stats["wall_time_s"] = round(time.perf_counter() - started, 3)
    stats.setdefault("time_to_plan_s", stats["wall_time_s"])
    stats.setdefault("time_to_bound_s", stats["wall_time_s"])
    return plan_from_schedules(problem, instance, method, schedules, alone, blocked, stats)


def evaluate(instance: Instance, schedules: dict[str, Schedule | None], skip=frozenset()) -> int:
    """Objective of a set of schedules: patient costs plus the penalty for each one left out
    (patients in ``skip`` are not counted)."""
    weights = instance.problem.site.objective
    penalty = unscheduled_penalty(instance)
    total = 0
    for spec in instance.patients:
        if spec.id in skip:
            continue
        schedule = schedules.get(spec.id)
        total += cost_terms(spec, weights).evaluate(schedule.starts) if schedule else penalty
    return total


def _gap(objective: int, bound: int) -> float:
    return round((objective - bound) / objective, 6) if objective > 0 else 0.0


def _solve_colgen(instance, schedulable, alone, hint, options: SolveOptions, stats, started, guard):
    """Column generation (``solver.colgen``) from the greedy plan; CP-SAT polishes what it has not proven,
    with its plan as the hint and its bound as the objective's lower bound."""
    # CP-SAT (OR-Tools) and HiGHS are imported where they are used: the baselines do without them.
    from solver.colgen import column_generation
    from solver.params import REPRODUCIBLE_WALL_FACTOR

    limit = options.time_limit * (REPRODUCIBLE_WALL_FACTOR if options.reproducible else 1)
    found = column_generation(
        instance,
        schedulable,
        hint,
        unscheduled_penalty(instance),
        started,
        started + limit,
        options.reproducible,
        guard,
    )
    stats.update(colgen_stats(found))
    schedules = found.schedules
    remaining = limit - (time.perf_counter() - started)
    if found.proven or remaining < MIN_POLISH_SECONDS:
        return schedules
    # Reproducible: CP-SAT's limit is deterministic time, never what the clock has left.
    polish = options if options.reproducible else dataclasses.replace(options, time_limit=remaining)
    polished_stats: dict = {}
    polished = _solve_cp_sat(
        instance, schedulable, alone, schedules, polish, polished_stats, lower_bound=found.bound, guard=guard
    )
    if polished_stats.get("best_bound", 0) > stats["best_bound"]:
        stats["best_bound"], stats["bound_method"] = polished_stats["best_bound"], "cp-sat"
        stats["time_to_bound_s"] = round(time.perf_counter() - started, 3)
    if evaluate(instance, polished) < evaluate(instance, schedules):
        stats["time_to_plan_s"] = round(time.perf_counter() - started, 3)
        stats["polished_by"] = "cp-sat"
        schedules = polished
    if evaluate(instance, schedules) <= stats["best_bound"]:
        stats["status"] = "OPTIMAL"
    return schedules


def colgen_stats(found: ColgenResult) -> dict:
    """What a column generation run reports in a plan's stats: its bound, which method proved it, the
    time (from the solve's start) to bound and to plan."""
    stats = {
        "status": "OPTIMAL" if found.proven else "FEASIBLE",
        "best_bound": found.bound,
        "bound_method": f"colgen-{found.bound_method}",
        "time_to_bound_s": round(found.time_to_bound, 3),
        "time_to_plan_s": round(found.time_to_plan, 3),
        "colgen_rounds": found.rounds,
        "colgen_columns": found.columns,
        "colgen_objective": found.objective,
        "unscheduled_proven_minimum": found.fewest_unscheduled,
    }
    if found.notes:
        stats["colgen_notes"] = "; ".join(found.notes)
    return stats


def tail_guard(schedulable: list[PatientSpec], fcfs: dict[str, Schedule | None]) -> TailGuard | None:
    """The tail guard from the first-come-first-served plan: nobody waits longer than its longest wait
    (or their own wait alone, if longer), nor more patients beyond its 90th percentile than it has (the
    patients it left out are not counted). None if it schedules nobody: there is no tail to guard."""
    from solver.colgen import TailGuard

    waits = {p.id: fcfs[p.id].starts[p.infusion] - p.approval for p in schedulable if fcfs.get(p.id) is not None}
    if not waits:
        return None
    longest, p90 = max(waits.values()), _percentile(list(waits.values()), 90)
    own = {p.id: p.free_infusion - p.approval if p.free_infusion is not None else 0 for p in schedulable}
    return TailGuard(
        {pid: max(longest, own[pid]) for pid in own},
        p90,
        sum(w > p90 for w in waits.values()),
        frozenset(p.id for p in schedulable if p.id not in waits),
    )


def _solve_cp_sat(
    instance, schedulable, alone, hint, options: SolveOptions, stats, lower_bound: int | None = None, guard=None
) -> dict[str, Schedule | None]:
    from solver.model import CohortModelBuilder
    from solver.params import cp_model, new_solver

    lower = {p.id: alone[p.id].cost for p in schedulable}
    # Scheduling as many patients as possible comes first. When the greedy plan
    # already schedules everyone who can be, that priority is settled: fixing
    # every patient present leaves CP-SAT a model without optional intervals.
    everyone = all(hint.get(p.id) is not None for p in schedulable)
    stats["everyone_scheduled_by_greedy"] = everyone
    builder = CohortModelBuilder(instance, schedulable)
    if everyone:
        builder.require()
    if guard is not None:
        builder.add_tail_guard(guard.longest, guard.p90, guard.above, guard.exempt)
    cohort = builder.add_capacity().add_cost(lower).add_hint(hint).build(lower_bound)
    solver = new_solver(options.time_limit, options.workers, options.reproducible)
    status = solver.solve(cohort.model)
    stats["status"] = solver.status_name(status)
    stats["solver_wall_time_s"] = round(solver.wall_time, 3)
    stats["deterministic_time"] = round(solver.deterministic_time, 3)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        stats["fallback"] = f"CP-SAT returned {stats['status']} (no plan); the greedy plan is kept"
        return hint
    stats["best_bound"] = int(solver.best_objective_bound)
    out = cohort.schedules(solver, instance)
    if evaluate(instance, out) > evaluate(instance, hint):
        stats["fallback"] = "CP-SAT's plan was worse than the greedy plan; the greedy plan is kept"
        return hint
    return out


def unschedulable_alone(problem: Problem, instance: Instance, alone) -> dict[str, Unschedulable]:
    """Patients who cannot be scheduled even alone on the site, with the rule that blocks them."""
    out = {}
    for spec in instance.patients:
        if alone[spec.id] is not None:
            continue
        empty = next((s for s in spec.steps if not s.starts and s.blocked_rule != "HORIZON"), None)
        if empty is not None:
            rule, reason = empty.blocked_rule, empty.blocked_by
        else:
            rule, reason = _counterfactual_reason(problem, spec)
        wider = _alone_schedule(problem, spec.patient, extra_days=365)
        earliest = wider[0].date_of(wider[1][spec.infusion]) if wider else None
        if rule == "HORIZON" and wider is not None:
            rule, reason = _binding_washout(problem, spec, wider) or (rule, reason)
        if earliest is not None:
            reason += (
                f"; the earliest infusion would be {say_day(earliest)}, "
                f"after the horizon ends {say_day(problem.horizon.end)}"
            )
        out[spec.id] = Unschedulable(patient=spec.id, rule=rule, reason=reason, earliest_infusion=earliest)
    return out


def _counterfactual_reason(problem: Problem, spec: PatientSpec) -> tuple[str, str]:
    """Which of the patient's own constraints, taken away, would let them fit inside the horizon."""
    patient = spec.patient
    for agent in sorted(patient.last_doses):
        others = {a: d for a, d in patient.last_doses.items() if a != agent}
        if _alone_infusion(problem, patient.model_copy(update={"last_doses": others})):
            rule = next(w for w in problem.washouts(patient) if w.agent == agent)
            day = patient.last_doses[agent] + timedelta(days=rule.days)
            return "WASHOUT", (
                f"{rule.before.value} cannot start before {say_day(day)}, {rule.days} days after the last "
                f"{agent.replace('_', ' ')}, which leaves no room inside the horizon"
            )
    if patient.blackouts and _alone_infusion(problem, patient.model_copy(update={"blackouts": ()})):
        spans = ", ".join(say_span(b.first_day, b.last_day) for b in patient.blackouts)
        return "BLACKOUT", f"the patient's blackout dates ({spans}) leave no room for the pathway inside the horizon"
    if patient.earliest_start and _alone_infusion(problem, patient.model_copy(update={"earliest_start": None})):
        return "EARLIEST_START", (
            f"from the earliest start {say_day(patient.earliest_start)} the pathway does not fit inside the horizon"
        )
    return "HORIZON", "no dates satisfy the pathway's steps, lags and calendars inside the horizon"


def _binding_washout(problem: Problem, spec: PatientSpec, wider) -> tuple[str, str] | None:
    """If a washout holds a step back in the extended schedule, name it."""
    instance, starts = wider
    for step in spec.steps:
        washout = problem.washout_day(spec.patient, step.kind)
        if washout is not None and instance.date_of(starts[step.index]) >= washout[0] > problem.horizon.start:
            day, rule = washout
            return "WASHOUT", (
                f"{step.name} cannot start before {say_day(day)}, {rule.days} days after the last "
                f"{rule.agent.replace('_', ' ')}"
            )
    return None


def _alone_schedule(problem: Problem, patient, extra_days: int = 0) -> tuple[Instance, list[int]] | None:
    """The patient's capacity-free schedule on a horizon extended by ``extra_days``, or None."""
    horizon = problem.horizon.model_copy(update={"days": problem.horizon.days + extra_days})
    cohort = problem.cohort.model_copy(update={"horizon": horizon, "patients": (patient,)})
    wider = build_instance(dataclasses.replace(problem, cohort=cohort))
    schedule = capacity_free(wider)[patient.id]
    return (wider, schedule.starts) if schedule is not None else None


def _alone_infusion(problem: Problem, patient, extra_days: int = 0):
    """The patient's capacity-free infusion date on a horizon extended by ``extra_days``, or None."""
    found = _alone_schedule(problem, patient, extra_days)
    return found[0].date_of(found[1][found[0].patients[0].infusion]) if found else None


def plan_from_schedules(problem, instance: Instance, method, schedules, alone, blocked, stats) -> Plan:
    """The Plan of ``schedules`` (start days per patient): bookings, outcomes, unschedulable patients with reasons."""
    bookings = []
    outcomes = []
    unschedulable = list(blocked.values())
    usage = resource_usage(instance, schedules)
    waits = []
    for spec in instance.patients:
        schedule = schedules.get(spec.id)
        free = alone.get(spec.id)
        free_infusion = instance.date_of(free.starts[spec.infusion]) if free else None
        if schedule is None:
            bookings.extend(_frozen_bookings(instance, spec))
            if spec.id not in blocked:
                cells = blocking_cells(instance, spec, free, usage)
                unschedulable.append(
                    Unschedulable(
                        patient=spec.id,
                        rule="CAPACITY",
                        reason="no free capacity inside the horizon; alone on the site the infusion could be "
                        f"{say_day(free_infusion)}, but " + ("; ".join(cells) or "the site is full"),
                        earliest_infusion=free_infusion,
                    )
                )
            continue
        for step in spec.steps:
            start = schedule.starts[step.index]
            bookings.append(
                Booking(
                    patient=spec.id,
                    step=step.name,
                    first_day=instance.date_of(start),
                    last_day=instance.date_of(start + step.duration - 1),
                )
            )
        infusion = schedule.starts[spec.infusion]
        waits.append(infusion - spec.approval)
        delayed = ()
        if free is not None and infusion > free.starts[spec.infusion]:
            delayed = tuple(blocking_cells(instance, spec, free, usage, exclude_own=schedule))
        outcomes.append(
            PatientOutcome(
                patient=spec.id,
                infusion=instance.date_of(infusion),
                capacity_free_infusion=free_infusion,
                delayed_by=delayed,
            )
        )
    stats["scheduled"] = len(outcomes)
    stats["unschedulable"] = len(unschedulable)
    stats["median_approval_to_infusion_days"] = statistics.median(waits) if waits else None
    stats["p90_approval_to_infusion_days"] = _percentile(waits, 90)
    stats["max_approval_to_infusion_days"] = max(waits) if waits else None
    return Plan(
        cohort=problem.cohort.name,
        method=method,
        bookings=tuple(bookings),
        unschedulable=tuple(sorted(unschedulable, key=lambda u: u.patient)),
        outcomes=tuple(outcomes),
        stats=stats,
    )


def _frozen_bookings(instance: Instance, spec: PatientSpec) -> list[Booking]:
    """An unscheduled patient keeps what is already done or fixed."""
    return [
        Booking(
            patient=spec.id,
            step=step.name,
            first_day=instance.date_of(step.frozen),
            last_day=instance.date_of(step.frozen + step.duration - 1),
        )
        for step in spec.steps
        if step.frozen is not None
    ]


def _percentile(values: list[int], q: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, -(-q * len(ordered) // 100) - 1)  # nearest-rank method
    return ordered[rank]


def _cells(instance: Instance, spec: PatientSpec, starts: list[int | None]):
    """(resource id, cell, amount) for every resource cell a schedule uses (None: step not booked)."""
    for step in spec.steps:
        if starts[step.index] is not None:
            yield from resource_cells(instance, step, starts[step.index])


def resource_usage(instance: Instance, schedules) -> dict[tuple[str, int], int]:
    usage: dict[tuple[str, int], int] = defaultdict(int)
    for spec in instance.patients:
        schedule = schedules.get(spec.id)
        starts = schedule.starts if schedule is not None else [step.frozen for step in spec.steps]
        for rid, cell, amount in _cells(instance, spec, starts):
            usage[rid, cell] += amount
    return usage


def blocking_cells(instance, spec, free: Schedule | None, usage, exclude_own: Schedule | None = None) -> list[str]:
    """Resource days (weeks) the capacity-free schedule needed that others have filled, as date ranges."""
    if free is None:
        return []
    own: dict[tuple[str, int], int] = defaultdict(int)
    if exclude_own is not None:
        for rid, cell, amount in _cells(instance, spec, exclude_own.starts):
            own[rid, cell] += amount
    full: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # rid -> (cell, taken, capacity)
    for rid, cell, amount in _cells(instance, spec, free.starts):
        capacity = instance.capacity[rid][cell]
        others = usage.get((rid, cell), 0) - own.get((rid, cell), 0)
        if others + amount > capacity and all(c != cell for c, _, _ in full[rid]):
            full[rid].append((cell, others, capacity))
    ranges = []
    for rid, cells in full.items():
        cells.sort()
        run = [cells[0]]
        for item in cells[1:]:
            if item[0] == run[-1][0] + 1:
                run.append(item)
            else:
                ranges.append((rid, run))
                run = [item]
        ranges.append((rid, run))
    ranges.sort(key=lambda r: (r[1][0][0] * (7 if instance.weekly[r[0]] else 1), r[0]))
    return [_describe_run(instance, rid, run) for rid, run in ranges[:MAX_DELAY_REASONS]]


def _describe_run(instance: Instance, rid: str, run: list[tuple[int, int, int]]) -> str:
    taken = max(t for _, t, _ in run)
    capacity = min(c for _, _, c in run)
    if instance.weekly[rid]:
        first = instance.date_of(run[0][0] * 7 - instance.week_offset)
        when = (
            instance.resources[rid].say_cell(first)
            if len(run) == 1
            else f"in the {len(run)} weeks from {say_day(first)}"
        )
    else:
        first, last = instance.date_of(run[0][0]), instance.date_of(run[-1][0])
        when = f"on {say_day(first)}" if first == last else f"from {first:%a %d %b} to {say_day(last)}"
    return f"{rid} full {when} ({taken} of {capacity} taken)"
