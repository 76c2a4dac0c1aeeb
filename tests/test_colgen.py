"""Column generation (solver.colgen) behind solve(problem, "colgen"): clean plans, valid bounds, proofs.

Every plan goes through the independent checker. The bound is checked against
every other method's plan (a bound above any feasible plan would be a wrong
proof), and on the small cohorts the plan is proven optimal and equals
CP-SAT's proven optimum.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from pathway.catalogue import load_catalogue
from pathway.cohort import load_problem
from pathway.rules import check_plan
from solver.solve import SolveOptions, solve
from tests.paths import COHORTS
from tests.strategies import cohorts

FIXTURES = sorted(p.stem for p in COHORTS.glob("*.json") if p.stem != "national")
TEMPLATES = sorted(t.id for t in load_catalogue().templates)


def _colgen(problem, limit=20.0, reproducible=True):
    return solve(problem, "colgen", SolveOptions(time_limit=limit, reproducible=reproducible))


def _assert_clean_and_complete(problem, plan):
    assert check_plan(problem, plan) == []
    unschedulable = {u.patient for u in plan.unschedulable}
    assert plan.scheduled_patients() | unschedulable == {p.id for p in problem.patients}


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_cohorts_get_clean_plans_proven_optimal(name):
    problem = load_problem(COHORTS / f"{name}.json")
    plan = _colgen(problem)
    _assert_clean_and_complete(problem, plan)
    s = plan.stats
    assert s["best_bound"] == s["objective"] and s["status"] == "OPTIMAL" and s["gap"] == 0
    assert s["bound_method"].startswith("colgen-")
    assert 0 < s["time_to_bound_s"] <= s["time_to_plan_s"] <= s["wall_time_s"]
    assert s["objective"] <= s["greedy_objective"]


@pytest.mark.parametrize("name", ["small", "cannot_fit", "christmas"])
def test_small_cohorts_equal_cp_sat_proven_optimum(name):
    problem = load_problem(COHORTS / f"{name}.json")
    cp_sat = solve(problem, "cp-sat", SolveOptions(time_limit=20.0, reproducible=True))
    assert cp_sat.stats["status"] == "OPTIMAL"
    assert _colgen(problem).stats["objective"] == cp_sat.stats["objective"]


@pytest.mark.parametrize("name", ["regional", "oversubscribed"])
def test_colgen_beats_or_ties_cp_sat_in_ten_seconds_and_bounds_its_plan(name):
    problem = load_problem(COHORTS / f"{name}.json")
    cp_sat = solve(problem, "cp-sat", SolveOptions(time_limit=10.0))
    plan = _colgen(problem, reproducible=False)
    assert plan.stats["objective"] <= cp_sat.stats["objective"]
    assert plan.stats["best_bound"] <= cp_sat.stats["objective"]
    assert cp_sat.stats["best_bound"] <= plan.stats["objective"]


def test_reproducible_mode_gives_the_same_plan_twice():
    problem = load_problem(COHORTS / "oversubscribed.json")
    first, second = _colgen(problem), _colgen(problem)
    assert first.bookings == second.bookings
    assert first.stats["best_bound"] == second.stats["best_bound"]


def test_without_time_to_prove_the_plan_is_still_clean_and_the_bound_still_valid():
    """A time limit too short for the exact phase: the greedy start or better, a bound below every plan."""
    problem = load_problem(COHORTS / "regional.json")
    plan = _colgen(problem, limit=0.01, reproducible=False)
    _assert_clean_and_complete(problem, plan)
    proven = _colgen(problem)
    assert plan.stats["best_bound"] <= proven.stats["objective"] <= plan.stats["objective"]
    assert plan.stats["objective"] <= plan.stats["greedy_objective"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=cohorts(max_size=25))
def test_generated_cohorts_never_worse_than_greedy_and_the_bound_never_above_a_plan(problem):
    plan = _colgen(problem, limit=10.0)
    _assert_clean_and_complete(problem, plan)
    greedy = solve(problem, "greedy")
    cp_sat = solve(problem, "cp-sat", SolveOptions(time_limit=2.0, reproducible=True))
    assert plan.stats["objective"] <= greedy.stats["objective"]
    assert plan.stats["best_bound"] <= min(plan.stats["objective"], cp_sat.stats["objective"])
