"""Best schedule for one patient on given start-day domains.

Used by the greedy baseline (domains narrowed to the residual capacity left by
earlier patients) and by the capacity-free bound (the patient alone on the
site). The pathway's steps are linked by lags in both directions, so a small
CP-SAT model is the simple, exact way to search them.
"""

from __future__ import annotations

from solver.instance import PatientSpec
from solver.lags import add_lags
from solver.objective import CostTerms, hinge_bound
from solver.params import cp_model, new_solver


def best_single_schedule(
    spec: PatientSpec, domains: list[list[int]], terms: CostTerms, time_limit: float = 5.0
) -> tuple[list[int], bool] | None:
    """(start day of every step minimising the patient's cost, proven optimal?), or None if none exists."""
    if any(not d for d in domains):
        return None
    model = cp_model.CpModel()
    starts = [model.new_int_var_from_domain(cp_model.Domain.from_values(d), f"s{i}") for i, d in enumerate(domains)]
    add_lags(model, spec, starts)
    objective = terms.constant + sum(c * starts[i] for i, c in terms.coefficients.items())
    for hinge in terms.hinges:
        excess = model.new_int_var(0, hinge_bound(hinge, domains), hinge.name)
        base = starts[hinge.earlier] if hinge.earlier is not None else 0
        model.add(excess >= starts[hinge.later] - base - hinge.allowance)
        objective += hinge.weight * excess
    model.minimize(objective)
    solver = new_solver(time_limit, workers=1)
    status = solver.solve(model)
    if status == cp_model.UNKNOWN:  # a few steps' model: give it once more, longer, before saying "none"
        solver = new_solver(4 * time_limit, workers=1)
        status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return [solver.value(s) for s in starts], status == cp_model.OPTIMAL
