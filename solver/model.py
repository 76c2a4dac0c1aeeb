"""The CP-SAT model of a whole cohort.

Variables: one start day per patient step (domain = the step's allowed start
days), one presence literal per patient. Constraints: the catalogue's lags
(enforced when the patient is scheduled), and one cumulative per resource on
the day axis (manufacturer slots on a week axis). Day-varying capacity is
modelled with fixed blocking intervals of demand ``max - capacity(day)``;
frozen bookings (of every patient, scheduled or not) are taken off the
capacity before the model is built.

Objective: the sum of every scheduled patient's cost (``solver.objective``)
plus a penalty per unscheduled patient that outweighs any schedule, so the
number of patients scheduled comes first. A redundant ``cost >= capacity-free
cost`` per patient tightens the proven bound.

Move penalty (optional, for "minimal disruption"): given ``current``, the start
day each patient's steps have in the plan people already know, every not-frozen
step of those patients gets a shift variable ``|start - current start|`` in
days, and the objective gains the step's ``MoveCost``: ``per_day * shift``, plus
``per_move`` if its start changes at all. The costs may differ per step (the
nightly re-solve weighs confirmed and near-term bookings more). The shifts and
their unweighted sum (``CohortModel.disruption``) are returned, so a caller may
also build its own objective from them (propose: disruption first, then the new
patient's cost).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from solver.baseline import Schedule, residual_after_frozen
from solver.instance import Instance, PatientSpec
from solver.objective import cost_terms, hinge_bound, unscheduled_penalty
from solver.params import cp_model


@dataclass(frozen=True)
class MoveCost:
    """What moving one booking costs in the objective: per day moved, and once if it moves at all."""

    per_day: int = 0
    per_move: int = 0


NO_MOVE_COST = MoveCost()


@dataclass
class PatientVars:
    spec: PatientSpec
    present: cp_model.IntVar
    starts: list  # IntVar or int (frozen)
    cost: cp_model.IntVar


@dataclass
class CohortModel:
    model: cp_model.CpModel
    patients: list[PatientVars]
    # Move penalty terms (only for patients in ``current``): patient id -> [(step index, shift in days)].
    shifts: dict[str, list[tuple[int, cp_model.IntVar]]] = field(default_factory=dict)
    disruption: cp_model.LinearExprT = 0  # sum of every shift, in days (unweighted)


def build_model(
    instance: Instance,
    patients: list[PatientSpec],
    lower_bounds: dict[str, int],
    hint: dict[str, Schedule | None] | None = None,
    everyone: bool = False,
    current: dict[str, list[int | None]] | None = None,
    move_costs: MoveCost | dict[str, dict[int, MoveCost]] = NO_MOVE_COST,
    required: frozenset[str] | set[str] = frozenset(),
) -> CohortModel:
    """The model of ``patients`` on ``instance`` (frozen bookings of every patient of the instance are fixed load).

    ``everyone``: schedule every patient (the caller knows a plan with all of them exists).
    ``required``: schedule these patients (the caller knows a plan with all of them exists).

    ``current``: patient id -> current start day of each step, in the order of
    ``PatientSpec.steps`` (None: step not booked now, no penalty). For every
    not-frozen step with a current start, a shift variable ``|start - current|``
    is added to ``CohortModel.shifts``, and the objective gains the step's
    ``MoveCost`` (``move_costs``: one for every step, or per patient a dict of
    step index -> cost; a step not in it moves free). With no cost the shifts are still built
    (for a caller's own objective) but the objective is unchanged. An unscheduled patient's starts
    are free, so the solver leaves its shifts at their least; the unscheduled
    penalty already outweighs any move.
    """
    model = cp_model.CpModel()
    weights = instance.problem.site.objective
    penalty = unscheduled_penalty(instance)
    daily: dict[str, list[tuple[cp_model.IntervalVar, int]]] = defaultdict(list)
    weekly: dict[str, list[tuple[cp_model.IntervalVar, int]]] = defaultdict(list)
    out: list[PatientVars] = []
    objective = []
    shifts: dict[str, list[tuple[int, cp_model.IntVar]]] = {}

    for spec in patients:
        pid = spec.id
        present = model.new_bool_var(f"{pid}:scheduled")
        if everyone or pid in required:
            model.add(present == 1)
        starts = []
        for step in spec.steps:
            if step.frozen is not None:
                starts.append(step.frozen)
            else:
                domain = cp_model.Domain.from_values(step.starts)
                starts.append(model.new_int_var_from_domain(domain, f"{pid}:{step.name}"))

        for step in spec.steps:
            for lag in step.lags:
                if step.frozen is not None and spec.steps[lag.other].frozen is not None:
                    continue  # both fixed: nothing to decide (the checker still judges them)
                anchor = starts[lag.other] + (spec.steps[lag.other].duration if lag.anchor_end else 0)
                model.add(starts[step.index] - anchor >= lag.min).only_enforce_if(present)
                if lag.max is not None:
                    model.add(starts[step.index] - anchor <= lag.max).only_enforce_if(present)

            if step.frozen is not None:
                continue  # its load is already taken off the capacity
            for use in step.uses:
                name = f"{pid}:{step.name}:{use.resource}"
                if use.weekly:
                    weeks = sorted({instance.week(d) for d in step.starts})
                    week = model.new_int_var_from_domain(cp_model.Domain.from_values(weeks), f"{name}:week")
                    model.add_division_equality(week, starts[step.index] + instance.week_offset, 7)
                    interval = model.new_optional_fixed_size_interval_var(week, 1, present, name)
                    weekly[use.resource].append((interval, use.amount))
                else:
                    interval = model.new_optional_fixed_size_interval_var(starts[step.index], use.days, present, name)
                    daily[use.resource].append((interval, use.amount))

        terms = cost_terms(spec, weights)
        linear = terms.constant + sum(c * starts[i] for i, c in terms.coefficients.items())
        domains = [[s.frozen] if s.frozen is not None else s.starts for s in spec.steps]
        for hinge in terms.hinges:
            excess = model.new_int_var(0, hinge_bound(hinge, domains), f"{pid}:{hinge.name}")
            base = starts[hinge.earlier] if hinge.earlier is not None else 0
            model.add(excess >= starts[hinge.later] - base - hinge.allowance).only_enforce_if(present)
            linear += hinge.weight * excess
        cost = model.new_int_var(0, penalty, f"{pid}:cost")
        model.add(cost == linear).only_enforce_if(present)
        model.add(cost == 0).only_enforce_if(~present)
        if spec.id in lower_bounds:
            model.add(cost >= lower_bounds[spec.id]).only_enforce_if(present)
        objective.append(cost)
        objective.append(penalty * (1 - present))
        out.append(PatientVars(spec, present, starts, cost))

        if current is not None and pid in current:
            shifts[pid] = _shifts(model, spec, starts, current[pid])
            for index, shift in shifts[pid]:
                cost = move_costs if isinstance(move_costs, MoveCost) else move_costs.get(pid, {}).get(index, NO_MOVE_COST)
                if cost.per_day:
                    objective.append(cost.per_day * shift)
                if cost.per_move:
                    moved = model.new_bool_var(f"{shift.name}:moved")
                    model.add(shift == 0).only_enforce_if(~moved)
                    objective.append(cost.per_move * moved)
                    objective.append(cost.per_move * (1 - present))

        if hint is not None:
            schedule = hint.get(pid)
            model.add_hint(present, schedule is not None)
            if schedule is not None:
                for var, value in zip(starts, schedule.starts):
                    if not isinstance(var, int):
                        model.add_hint(var, value)

    capacity = residual_after_frozen(instance).left
    for rid, uses in (daily | weekly).items():
        _cumulative(model, rid, uses, capacity[rid])
    model.minimize(sum(objective))
    disruption = sum(shift for steps in shifts.values() for _, shift in steps)
    return CohortModel(model, out, shifts, disruption)


def _shifts(model: cp_model.CpModel, spec: PatientSpec, starts: list, current: list[int | None]):
    """(step index, |start - current start|) for every not-frozen step with a current start."""
    out = []
    for step in spec.steps:
        was = current[step.index] if step.index < len(current) else None
        if step.frozen is not None or was is None:
            continue
        far = max(abs(step.starts[0] - was), abs(step.starts[-1] - was)) if step.starts else 0
        shift = model.new_int_var(0, far, f"{spec.id}:{step.name}:shift")
        model.add_abs_equality(shift, starts[step.index] - was)
        out.append((step.index, shift))
    return out


def _cumulative(model: cp_model.CpModel, rid: str, uses, capacity: list[int]) -> None:
    """Cumulative over a day (or week) axis whose capacity varies by cell."""
    top = max(capacity)
    intervals = [i for i, _ in uses]
    demands = [d for _, d in uses]
    cell = 0
    while cell < len(capacity):
        if capacity[cell] < top:
            end = cell
            while end < len(capacity) and capacity[end] == capacity[cell]:
                end += 1
            intervals.append(model.new_fixed_size_interval_var(cell, end - cell, f"{rid}:reduced@{cell}"))
            demands.append(top - capacity[cell])
            cell = end
        else:
            cell += 1
    model.add_cumulative(intervals, demands, top)
