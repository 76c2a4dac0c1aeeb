"""The groundwork every method shares (instance, capacity-free schedules, greedy) gives the same answers
after it was made fast as before.

The digests and objectives below were recorded from the solver as it was before that work (commit
cdae1dd): each step's allowed start days and blocking reasons, and the greedy and capacity-free plans
(every booking, outcome and unschedulable entry). A change that moves one start day of one patient
changes a digest. Every plan also passes the independent checker.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

import pytest

from pathway.cohort import load_problem
from pathway.rules import check_plan
from pathway.site import CapacityChange
from solver.baseline import greedy
from solver.solve import SolveOptions, groundwork, solve
from tests.paths import COHORTS

# cohort -> (allowed start days, greedy plan, greedy objective, capacity-free plan, capacity-free objective)
BEFORE = {
    "regional": (
        "98b7dada3077df39908778d7e93c4eb98938c97901f9546a18e6f2b28d519496",
        "c14e374e00db7e348962b2a2e77ce5a865aa92b572a06f3678cc5838d1530a8a",
        60405,
        "2f90c64de8997818453fc725f73e068b9b535a9fb933b095e1b24097602bedc5",
        46445,
    ),
    "closure": (
        "10722f211f3e6997796419b37ab48407df473ad0cb1658b452a6494bf940fd06",
        "3fb8c6a1ce43b28ad6dd74245a25bf641b6d7fa8f19b58afad0394361b3b6f2a",
        1075964,
        "35fcf6b8bc2350821c57265fb5f5cec762552578283451d615da207d9e984fa1",
        10922,
    ),
    "oversubscribed": (
        "2fc10ac9dbe9bdb6940f0dcf2d4f6e39f3d5dd5a4e34aa10c3bbd7790b080334",
        "f4f76cf1d437f3945ff95c873721962b91d0120e52eab67948d779b4747c2ef7",
        57548,
        "2f77b26aa6b48e20d96f853f08d56f1e70816297bc88597fd85f6065fb7635f9",
        24674,
    ),
    "national": (
        "e20046af8a52045ab2b3563b2d2736c959c7457c798af35268995f4b77a9869d",
        "61ca5988c93defa72d2a43c2f01060d5fb105d9c1023cbdcd8888c8abb8721c4",
        845899,
        "cf76d4e796e3a61cd8bfb1598bc39d2ce72a76264aaedf9376d2d8256345b96b",
        671591,
    ),
}
# Regional and oversubscribed: column generation's proven optimum with the default waiting policy.
COLGEN_OPTIMUM = {"regional": 52328, "oversubscribed": 43216}


def _domains_digest(instance) -> str:
    digest = hashlib.sha256()
    for spec in instance.patients:
        for step in spec.steps:
            fields = [spec.id, step.name, step.starts, step.blocked_rule, step.blocked_by, step.frozen]
            digest.update(json.dumps(fields).encode())
    return digest.hexdigest()


def _plan_digest(plan) -> str:
    digest = hashlib.sha256()
    for part in (plan.bookings, plan.unschedulable, plan.outcomes):
        digest.update(json.dumps([item.model_dump(mode="json") for item in part]).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_domains_and_baseline_plans_are_as_before(name):
    domains, greedy_plan, greedy_objective, free_plan, free_objective = BEFORE[name]
    problem = load_problem(COHORTS / f"{name}.json")
    assert _domains_digest(groundwork(problem).instance) == domains
    plan = solve(problem, "greedy")
    assert (plan.stats["objective"], _plan_digest(plan)) == (greedy_objective, greedy_plan)
    assert check_plan(problem, plan) == []
    plan = solve(problem, "capacity-free")
    assert (plan.stats["objective"], _plan_digest(plan)) == (free_objective, free_plan)


@pytest.mark.parametrize("name", sorted(COLGEN_OPTIMUM))
def test_column_generation_proves_the_same_optimum_with_a_clean_plan(name):
    problem = load_problem(COHORTS / f"{name}.json")
    plan = solve(problem, "colgen", SolveOptions(time_limit=20.0, reproducible=True))
    assert plan.stats["status"] == "OPTIMAL"
    assert plan.stats["objective"] == plan.stats["best_bound"] == COLGEN_OPTIMUM[name]
    assert check_plan(problem, plan) == []


@pytest.mark.parametrize("name", ["small", "christmas", "closure", "oversubscribed", "regional"])
def test_greedy_reusing_capacity_free_schedules_books_what_a_search_per_patient_books(name):
    """Greedy gives a patient their capacity-free schedule without a search when it still fits: the
    same schedule, at the same cost, as searching the narrowed domains would give."""
    base = groundwork(load_problem(COHORTS / f"{name}.json"))
    searched = greedy(base.instance, excluded=set(base.blocked))
    reused = greedy(base.instance, excluded=set(base.blocked), alone=base.alone)
    assert reused == searched
    assert any(reused[p] is not None and reused[p].starts == base.alone[p].starts for p in reused)


def test_capacity_by_day_follows_every_change_the_last_listed_winning():
    problem = load_problem(COHORTS / "closure.json")
    site = problem.site
    devices = next(r for r in site.resources if r.kind == "manufacturing_device")
    first = problem.horizon.start - timedelta(days=10)
    overlapping = site.model_copy(
        update={
            "capacity_changes": site.capacity_changes
            + (
                CapacityChange(
                    resource=devices.kind,
                    centre=devices.centre,
                    first_day=date(2027, 2, 10),
                    last_day=date(2027, 2, 20),
                    capacity=1,
                    reason="one device serviced",
                ),
            )
        }
    )
    for checked in (site, overlapping):
        for resource in (r for r in checked.resources if not r.weekly):
            days = checked.capacity_days(resource, first, 120)
            assert days == [checked.capacity_on(resource, first + timedelta(days=d)) for d in range(120)]
    by_day = overlapping.capacity_days(devices, date(2027, 2, 1), 28)
    assert by_day[0] == 0 and by_day[9:20] == [1] * 11 and by_day[20] == devices.capacity
