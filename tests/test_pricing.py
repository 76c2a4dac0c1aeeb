"""The per-patient dynamic programme (solver.pricing) against CP-SAT, template by template.

For every template of the catalogue (remanufacture variants included) and
random integer prices on every resource cell, the programme's cheapest schedule
costs exactly what a CP-SAT model of the same patient proves optimal, and its
schedule passes the independent checker. The CP-SAT model here prices a step
by an element constraint over a table built from ``resource_cells``, not from
the programme's prefix sums, so the two compute prices independently.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from pathway.catalogue import load_catalogue
from pathway.cohort import parse_cohort
from pathway.rules import check_plan
from solver.baseline import Schedule
from solver.instance import build_instance, resource_cells
from solver.lags import add_lags
from solver.objective import cost_terms, hinge_bound
from solver.params import cp_model, new_solver
from solver.pricing import PatientPricer
from solver.solve import plan_from_schedules

CATALOGUE = load_catalogue().with_remanufacture()
TEMPLATES = sorted(t.id for t in CATALOGUE.templates)


def _one_patient(template: str, target: str | None = None):
    patient = {"id": "T001", "centre": "liverpool", "pathway": template, "approval_date": "2027-01-04"}
    if target:
        patient["target_infusion_date"] = target
    return parse_cohort(
        {
            "name": f"one-{template}",
            "site": "default",
            "horizon": {"start": "2027-01-04", "days": 110},
            "patients": [patient],
        },
        catalogue=CATALOGUE,
    )


def _random_prices(instance, seed: int) -> dict[str, np.ndarray]:
    rng = random.Random(seed)
    return {
        rid: np.array([rng.choice([0, 0, 1, 3, 20]) for _ in caps], dtype=float)
        for rid, caps in instance.capacity.items()
    }


def _priced_model(instance, spec, prices):
    """A CP-SAT model of the patient alone: its cost plus the prices of its cells, to minimise."""
    terms = cost_terms(spec, instance.problem.site.objective)
    model = cp_model.CpModel()
    domains = [s.starts for s in spec.steps]
    starts = [
        model.new_int_var_from_domain(cp_model.Domain.from_values(d), s.name)
        for d, s in zip(domains, spec.steps, strict=True)
    ]
    add_lags(model, spec, starts)
    objective = terms.constant + sum(c * starts[i] for i, c in terms.coefficients.items())
    for hinge in terms.hinges:
        excess = model.new_int_var(0, hinge_bound(hinge, domains), hinge.name)
        model.add(
            excess
            >= starts[hinge.later] - (starts[hinge.earlier] if hinge.earlier is not None else 0) - hinge.allowance
        )
        objective += hinge.weight * excess
    for step in spec.steps:
        first = step.starts[0]
        table = [
            int(sum(a * prices[rid][cell] for rid, cell, a in resource_cells(instance, step, day)))
            for day in range(first, step.starts[-1] + 1)
        ]
        price = model.new_int_var(0, max(table), f"{step.name}:price")
        model.add_element(starts[step.index] - first, table, price)
        objective += price
    model.minimize(objective)
    return model, starts


def _cp_sat_priced_optimum(instance, spec, prices) -> int:
    model, _ = _priced_model(instance, spec, prices)
    solver = new_solver(20.0, workers=1)
    assert solver.solve(model) == cp_model.OPTIMAL
    return int(solver.objective_value)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("seed", [1, 2])
def test_dynamic_programme_matches_cp_sat_on_every_template_with_random_prices(template, seed):
    problem = _one_patient(template, target="2027-02-22" if seed == 2 else None)
    instance = build_instance(problem)
    spec = instance.patients[0]
    terms = cost_terms(spec, problem.site.objective)
    prices = _random_prices(instance, seed)
    found = PatientPricer(instance, spec, terms).best(prices)
    assert found is not None
    cost, starts = found
    assert round(cost) == _cp_sat_priced_optimum(instance, spec, prices)
    # The schedule's own cost plus its cells' prices is the cost the programme reports.
    cells = sum(
        a * prices[rid][cell]
        for step in spec.steps
        for rid, cell, a in resource_cells(instance, step, starts[step.index])
    )
    assert terms.evaluate(starts) + cells == pytest.approx(cost)
    plan = plan_from_schedules(problem, instance, "dp", {spec.id: Schedule(starts, terms.evaluate(starts))}, {}, {}, {})
    assert check_plan(problem, plan) == []


@pytest.mark.parametrize("template", ["allo-sct-fresh", "axi-cel", "asct-mel200"])
def test_enumeration_lists_exactly_the_schedules_within_the_threshold(template):
    """Every listed schedule is within the threshold, none is listed twice, and the cheapest is among them;
    a CP-SAT model forbidding every listed schedule finds nothing else within the threshold."""
    problem = _one_patient(template)
    instance = build_instance(problem)
    spec = instance.patients[0]
    terms = cost_terms(spec, problem.site.objective)
    prices = _random_prices(instance, 7)
    pricer = PatientPricer(instance, spec, terms)
    best, best_starts = pricer.best(prices)
    threshold = best + 40
    listed, complete = pricer.enumerate(prices, threshold, limit=100_000)
    assert complete and best_starts in listed
    assert len({tuple(s) for s in listed}) == len(listed)

    def priced(starts):
        cells = sum(
            a * prices[rid][cell]
            for step in spec.steps
            for rid, cell, a in resource_cells(instance, step, starts[step.index])
        )
        return terms.evaluate(starts) + cells

    assert all(priced(s) <= threshold + 1e-6 for s in listed)
    # Nothing else: the CP-SAT optimum with every listed schedule forbidden costs more than the threshold.
    model, starts = _priced_model(instance, spec, prices)
    for schedule in listed:
        model.add_forbidden_assignments(starts, [schedule])
    solver = new_solver(20.0, workers=1)
    status = solver.solve(model)
    assert status == cp_model.INFEASIBLE or solver.objective_value > threshold
