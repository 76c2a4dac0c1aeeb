"""Column generation (solver.colgen) behind solve(problem, "colgen"): clean plans, valid bounds, proofs.

Every plan goes through the independent checker. The bound is checked against
every other method's plan (a bound above any feasible plan would be a wrong
proof), and on the small cohorts the plan is proven optimal and equals
CP-SAT's proven optimum.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from cohorts.generator import generate_cohort
from pathway.cohort import load_problem, parse_cohort
from pathway.rules import check_plan
from pathway.site import WaitingPolicy
from solver.instance import build_instance
from solver.objective import cost_terms
from solver.solve import SolveOptions, solve
from tests.builders import assert_complete_and_clean
from tests.paths import COHORTS
from tests.strategies import cohorts

FIXTURES = sorted(p.stem for p in COHORTS.glob("*.json") if p.stem != "national")


def _colgen(problem, limit=20.0, reproducible=True):
    return solve(problem, "colgen", SolveOptions(time_limit=limit, reproducible=reproducible))


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_cohorts_get_clean_plans_proven_optimal(name):
    problem = load_problem(COHORTS / f"{name}.json")
    plan = _colgen(problem)
    assert_complete_and_clean(problem, plan)
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
    assert_complete_and_clean(problem, plan)
    proven = _colgen(problem)
    assert plan.stats["best_bound"] <= proven.stats["objective"] <= plan.stats["objective"]
    assert plan.stats["objective"] <= plan.stats["greedy_objective"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=cohorts(max_size=25))
def test_generated_cohorts_never_worse_than_greedy_and_the_bound_never_above_a_plan(problem):
    plan = _colgen(problem, limit=10.0)
    assert_complete_and_clean(problem, plan)
    greedy = solve(problem, "greedy")
    cp_sat = solve(problem, "cp-sat", SolveOptions(time_limit=2.0, reproducible=True))
    assert plan.stats["objective"] <= greedy.stats["objective"]
    assert plan.stats["best_bound"] <= min(plan.stats["objective"], cp_sat.stats["objective"])


def _with_waiting(problem, **policy):
    objective = problem.site.objective
    waiting = objective.waiting.model_copy(update=policy)
    site = problem.site.model_copy(update={"objective": objective.model_copy(update={"waiting": waiting})})
    return dataclasses.replace(problem, site=site)


@pytest.mark.parametrize("name", ["regional", "oversubscribed"])
def test_the_tail_guard_keeps_the_longest_waits_no_longer_than_first_come_first_served(name):
    """With the default waiting policy the optimum's p90 and longest wait are no worse than greedy's and its
    median is lower; without the guard the proven optimum makes the longest wait longer than greedy's."""
    problem = load_problem(COHORTS / f"{name}.json")
    greedy = solve(problem, "greedy").stats
    guarded = _colgen(problem)
    assert "tail_guard" in guarded.stats and check_plan(problem, guarded) == []
    s = guarded.stats
    assert s["max_approval_to_infusion_days"] <= greedy["max_approval_to_infusion_days"]
    assert s["p90_approval_to_infusion_days"] <= greedy["p90_approval_to_infusion_days"]
    assert s["median_approval_to_infusion_days"] < greedy["median_approval_to_infusion_days"]
    unguarded = _colgen(_with_waiting(problem, tail_guard=False)).stats
    assert "tail_guard" not in unguarded
    assert unguarded["max_approval_to_infusion_days"] > greedy["max_approval_to_infusion_days"]
    assert unguarded["objective"] <= s["objective"]  # the guard is a constraint: it can only cost


def test_delay_rates_cost_each_day_beyond_their_thresholds():
    """A patient 20 days later than their capacity-free date pays 10 a day for days 15-20 (default rates)."""
    problem = load_problem(COHORTS / "small.json")
    instance = build_instance(problem)
    spec = instance.patients[0]
    weights = problem.site.objective
    starts = [s.starts[0] for s in spec.steps]
    before = cost_terms(spec, weights).evaluate(starts)
    spec.free_infusion = starts[spec.infusion] - 20
    assert cost_terms(spec, weights).evaluate(starts) - before == 10 * 6
    spec.free_infusion = starts[spec.infusion] - 30  # 14 days at 10, then 2 at 30
    assert cost_terms(spec, weights).evaluate(starts) - before == 10 * 14 + 30 * 2


@pytest.mark.parametrize(
    "rates",
    [
        [{"beyond_days": 14, "per_day": 30}, {"beyond_days": 28, "per_day": 10}],
        [{"beyond_days": 14, "per_day": 10}] * 2,
    ],
)
def test_delay_rates_that_do_not_rise_are_refused(rates):
    with pytest.raises(ValidationError, match="delay_rates must rise"):
        WaitingPolicy.model_validate({"delay_rates": rates})


def test_over_subscribed_cohort_reports_how_many_are_left_out_against_the_proven_minimum():
    """One bed-ward of 3 and one high-risk place for 30 referrals: not everyone fits. The first stage proves
    how many must be left out, and the plan leaves out no more than greedy does, nor fewer than proven."""
    raw = generate_cohort(
        name="squeezed", seed=7, patients=30, horizon_start=date(2027, 1, 4), horizon_days=120, approval_window_days=20
    )
    raw["capacity_changes"] = [
        {"resource": r, "centre": "liverpool", "first_day": "2027-01-04", "last_day": "2027-06-30", "capacity": c}
        | {"reason": "test: a squeezed site"}
        for r, c in (("bed", 3), ("high_risk_window", 1))
    ]
    problem = parse_cohort(raw, source="squeezed")
    greedy = solve(problem, "greedy").stats
    plan = _colgen(problem, limit=5.0, reproducible=False)
    assert_complete_and_clean(problem, plan)
    s = plan.stats
    assert greedy["unscheduled_for_capacity"] > 0
    assert 0 < s["unscheduled_proven_minimum"] <= s["unscheduled_for_capacity"] <= greedy["unscheduled_for_capacity"]
    assert s["best_bound"] <= s["objective"] <= greedy["objective"]


@pytest.mark.parametrize("exempt_everyone", [False, True])
def test_cp_sat_and_column_generation_keep_one_tail_guard(exempt_everyone):
    """The same guard in both models: a guard that lets nobody wait beyond day -1 (so that no counted
    patient may be scheduled) leaves everyone out in both, at the same cost (CP-SAT once made it
    infeasible, binding patients it had left out); exempting everyone (first come, first served left
    them all out) lifts the count, and both then find the unguarded optimum."""
    import time

    from solver.colgen import TailGuard, column_generation
    from solver.objective import unscheduled_penalty
    from solver.solve import _solve_cp_sat, evaluate, groundwork

    problem = load_problem(COHORTS / "small.json")
    base = groundwork(problem)
    ids = frozenset(p.id for p in base.schedulable)
    guard = TailGuard(dict.fromkeys(ids, 10_000), -1, 0, ids if exempt_everyone else frozenset())
    hint = dict.fromkeys(ids)  # everyone left out: feasible under any guard
    stats: dict = {}
    options = SolveOptions(time_limit=20.0, reproducible=True)
    cp_sat = _solve_cp_sat(base.instance, base.schedulable, base.alone, hint, options, stats, guard=guard)
    assert stats["status"] == "OPTIMAL"
    started = time.perf_counter()
    penalty = unscheduled_penalty(base.instance)
    found = column_generation(base.instance, base.schedulable, hint, penalty, started, started + 20, True, guard)
    assert found.proven
    assert evaluate(base.instance, cp_sat, skip=base.blocked) == found.objective
    scheduled = {pid for pid, schedule in cp_sat.items() if schedule is not None}
    assert scheduled == (ids if exempt_everyone else set())
