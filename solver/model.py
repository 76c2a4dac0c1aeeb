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
from collections.abc import Collection
from dataclasses import dataclass, field

from solver.baseline import Schedule, residual_after_frozen
from solver.instance import Instance, PatientSpec
from solver.lags import add_lags
from solver.objective import MoveCost, cost_terms, hinge_bound, unscheduled_penalty
from solver.params import cp_model

NO_MOVE_COST = MoveCost()


@dataclass
class PatientVars:
    spec: PatientSpec
    present: cp_model.IntVar
    starts: list  # IntVar or int (frozen)
    cost: cp_model.IntVar | None = None  # set by ``CohortModelBuilder.add_cost``

    def values(self, solver: cp_model.CpSolver) -> list[int]:
        return [v if isinstance(v, int) else solver.value(v) for v in self.starts]


@dataclass
class CohortModel:
    model: cp_model.CpModel
    patients: list[PatientVars]
    # Move penalty terms (only for patients in ``current``): patient id -> [(step index, shift in days)].
    shifts: dict[str, list[tuple[int, cp_model.IntVar]]] = field(default_factory=dict)
    disruption: cp_model.LinearExprT = 0  # sum of every shift, in days (unweighted)

    def schedules(self, solver: cp_model.CpSolver, instance: Instance) -> dict[str, Schedule | None]:
        """Every patient of ``instance``: the solved schedule of those present, None for the others."""
        weights = instance.problem.site.objective
        out: dict[str, Schedule | None] = {p.id: None for p in instance.patients}
        for pv in self.patients:
            if solver.boolean_value(pv.present):
                starts = pv.values(solver)
                out[pv.spec.id] = Schedule(starts, cost_terms(pv.spec, weights).evaluate(starts))
        return out


class CohortModelBuilder:
    """The CP-SAT model of ``patients`` on ``instance``, in named parts (see the module docstring).

    The constructor makes the variables (a start day per step on its allowed
    days, a presence literal per patient) and the lags; then, as the caller
    needs them: ``require`` (patients who must be scheduled), ``add_capacity``
    (one cumulative per resource, frozen bookings of every patient of the
    instance as fixed load), ``add_cost`` (the patients' costs and the
    unscheduled penalty), ``add_move_penalty`` (shifts against a current plan),
    ``add_hint``; ``build`` sets the objective.
    """

    def __init__(self, instance: Instance, patients: list[PatientSpec]):
        self.instance = instance
        self.model = cp_model.CpModel()
        self._objective: list = []
        self._shifts: dict[str, list[tuple[int, cp_model.IntVar]]] = {}
        self._uses: dict[str, list[tuple[cp_model.IntervalVar, int]]] = defaultdict(list)
        self.patients = [self._variables(spec) for spec in patients]

    def _variables(self, spec: PatientSpec) -> PatientVars:
        model = self.model
        present = model.new_bool_var(f"{spec.id}:scheduled")
        starts: list = [
            step.frozen
            if step.frozen is not None
            else model.new_int_var_from_domain(cp_model.Domain.from_values(step.starts), f"{spec.id}:{step.name}")
            for step in spec.steps
        ]
        add_lags(model, spec, starts, enforce=present)
        for step in spec.steps:
            if step.frozen is not None:
                continue  # its load is fixed capacity (``residual_after_frozen``)
            for use in step.uses:
                name = f"{spec.id}:{step.name}:{use.resource}"
                if use.weekly:
                    weeks = sorted({self.instance.week(d) for d in step.starts})
                    week = model.new_int_var_from_domain(cp_model.Domain.from_values(weeks), f"{name}:week")
                    model.add_division_equality(week, starts[step.index] + self.instance.week_offset, 7)
                    interval = model.new_optional_fixed_size_interval_var(week, 1, present, name)
                else:
                    interval = model.new_optional_fixed_size_interval_var(starts[step.index], use.days, present, name)
                self._uses[use.resource].append((interval, use.amount))
        return PatientVars(spec, present, starts)

    def require(self, patient_ids: Collection[str] | None = None) -> CohortModelBuilder:
        """Schedule these patients (default: all); the caller knows a plan with all of them exists."""
        for pv in self.patients:
            if patient_ids is None or pv.spec.id in patient_ids:
                self.model.add(pv.present == 1)
        return self

    def add_capacity(self) -> CohortModelBuilder:
        capacity = residual_after_frozen(self.instance).left
        for rid, uses in self._uses.items():
            _cumulative(self.model, rid, uses, capacity[rid])
        return self

    def add_cost(self, lower_bounds: dict[str, int] | None = None) -> CohortModelBuilder:
        """Each scheduled patient's cost (``solver.objective``), at least ``lower_bounds[id]``; the
        unscheduled penalty for the others."""
        model = self.model
        weights = self.instance.problem.site.objective
        penalty = unscheduled_penalty(self.instance)
        for pv in self.patients:
            spec, starts, pid = pv.spec, pv.starts, pv.spec.id
            terms = cost_terms(spec, weights)
            linear = terms.constant + sum(c * starts[i] for i, c in terms.coefficients.items())
            domains = [[s.frozen] if s.frozen is not None else s.starts for s in spec.steps]
            for hinge in terms.hinges:
                excess = model.new_int_var(0, hinge_bound(hinge, domains), f"{pid}:{hinge.name}")
                base = starts[hinge.earlier] if hinge.earlier is not None else 0
                model.add(excess >= starts[hinge.later] - base - hinge.allowance).only_enforce_if(pv.present)
                linear += hinge.weight * excess
            pv.cost = model.new_int_var(0, penalty, f"{pid}:cost")
            model.add(pv.cost == linear).only_enforce_if(pv.present)
            model.add(pv.cost == 0).only_enforce_if(~pv.present)
            if lower_bounds and pid in lower_bounds:
                model.add(pv.cost >= lower_bounds[pid]).only_enforce_if(pv.present)
            self._objective += [pv.cost, penalty * (1 - pv.present)]
        return self

    def add_move_penalty(
        self,
        current: dict[str, list[int | None]],
        move_costs: MoveCost | dict[str, dict[int, MoveCost]] = NO_MOVE_COST,
    ) -> CohortModelBuilder:
        """Shifts ``|start - current start|`` for every not-frozen step with a current start.

        ``current``: patient id -> current start day of each step, in the order of
        ``PatientSpec.steps`` (None: not booked now, no penalty). The objective gains
        each step's ``MoveCost`` (one for every step, or per patient a dict of step
        index -> cost; a step not in it moves free). With no cost the shifts are
        only measured (``CohortModel.shifts``, ``disruption``), for a caller's own
        objective. An unscheduled patient's starts are free, so its shifts stay at
        their least; dropping a patient costs at least moving each of its bookings.
        """
        for pv in self.patients:
            pid = pv.spec.id
            if pid not in current:
                continue
            self._shifts[pid] = _shifts(self.model, pv.spec, pv.starts, current[pid])
            for index, shift in self._shifts[pid]:
                cost = (
                    move_costs if isinstance(move_costs, MoveCost) else move_costs.get(pid, {}).get(index, NO_MOVE_COST)
                )
                if cost.per_day:
                    self._objective.append(cost.per_day * shift)
                if cost.per_move:
                    moved = self.model.new_bool_var(f"{shift.name}:moved")
                    self.model.add(shift == 0).only_enforce_if(~moved)
                    self._objective += [cost.per_move * moved, cost.per_move * (1 - pv.present)]
        return self

    def add_tail_guard(
        self, longest: dict[str, int], p90: int, above: int, exempt: Collection[str] = ()
    ) -> CohortModelBuilder:
        """Fair waiting's tail guard (``solver.colgen.TailGuard``, the same rule): each scheduled patient waits
        (approval to infusion) at most ``longest[id]`` days, and at most ``above`` of them, not counting
        the ``exempt``, more than ``p90`` days."""
        model = self.model
        counted = []
        for pv in self.patients:
            spec = pv.spec
            wait = pv.starts[spec.infusion] - spec.approval
            if isinstance(wait, int):  # a frozen infusion
                counted.append(pv.present if wait > p90 and spec.id not in exempt else 0)
                continue
            model.add(wait <= longest[spec.id]).only_enforce_if(pv.present)
            if spec.id in exempt:
                continue
            late = model.new_bool_var(f"{spec.id}:wait>{p90}")
            model.add(wait <= p90).only_enforce_if([~late, pv.present])  # nobody waits who is left out
            model.add_implication(late, pv.present)
            counted.append(late)
        model.add(sum(counted) <= above)
        return self

    def add_hint(self, hint: dict[str, Schedule | None]) -> CohortModelBuilder:
        """Start from these schedules (a patient hinted None is hinted unscheduled)."""
        for pv in self.patients:
            schedule = hint.get(pv.spec.id)
            self.model.add_hint(pv.present, schedule is not None)
            if schedule is not None:
                for var, value in zip(pv.starts, schedule.starts, strict=True):
                    if not isinstance(var, int):
                        self.model.add_hint(var, value)
        return self

    def build(self, lower_bound: int | None = None) -> CohortModel:
        """The model, minimising the objective; ``lower_bound``: a proven bound on it (column generation's),
        stated so CP-SAT's own bound starts there."""
        objective = sum(self._objective)
        if lower_bound is not None:
            self.model.add(objective >= lower_bound)
        self.model.minimize(objective)
        disruption = sum(shift for steps in self._shifts.values() for _, shift in steps)
        return CohortModel(self.model, self.patients, self._shifts, disruption)


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
