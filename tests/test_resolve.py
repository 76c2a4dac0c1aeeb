"""The nightly re-solve's solver (solver.resolve): re-optimise, moving only what pays.

Every plan goes through the independent checker. The solves are reproducible
(one worker, deterministic time), so the same input gives the same plan.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from pathway.cohort import FrozenBooking, Problem, load_problem
from pathway.plan import Plan
from pathway.rules import check_plan
from pathway.site import CapacityChange
from solver.resolve import resolve
from solver.solve import SolveOptions, solve
from tests.paths import COHORTS

OPTIONS = SolveOptions(time_limit=10, reproducible=True)


@pytest.fixture(scope="module")
def small() -> tuple[Problem, Plan]:
    problem = load_problem(COHORTS / "small.json")
    return problem, solve(problem, options=OPTIONS)


def _shifted(plan: Plan, patient: str, days: int) -> Plan:
    bookings = tuple(
        b.model_copy(
            update={"first_day": b.first_day + timedelta(days=days), "last_day": b.last_day + timedelta(days=days)}
        )
        if b.patient == patient
        else b
        for b in plan.bookings
    )
    return plan.model_copy(update={"bookings": bookings})


def _everything(plan: Plan) -> set[tuple[str, str]]:
    return {(b.patient, b.step) for b in plan.bookings}


def test_resolving_its_own_plan_moves_nothing(small):
    problem, plan = small
    first = resolve(problem, plan, _everything(plan), OPTIONS)
    assert check_plan(problem, first.plan) == []
    second = resolve(problem, first.plan, set(), OPTIONS)  # even with nothing confirmed: moves cost nothing less
    assert second.moves == [] and first.moves == []
    assert sorted(second.plan.bookings, key=str) == sorted(plan.bookings, key=str)
    assert second.stats["bookings_moved"] == 0


def test_a_delayed_patient_moves_back_only_when_the_gain_outweighs_moving_it(small):
    problem, plan = small
    late = _shifted(plan, "S-AXI-1", 28)  # the same pathway four weeks later: valid, but worse
    assert check_plan(problem, late) == []
    infusion = late.bookings_of("S-AXI-1")["infusion"].first_day

    planned = resolve(problem, late, set(), OPTIONS)
    assert check_plan(problem, planned.plan) == []
    assert {m.patient for m in planned.moves} == {"S-AXI-1"}  # nobody else is disturbed
    assert planned.plan.bookings_of("S-AXI-1")["infusion"].first_day < infusion
    assert planned.stats["objective"] < planned.stats["current_objective"]

    # Confirmed to the patient, each booking costs three times as much to move: it stays.
    confirmed = resolve(problem, late, _everything(late), OPTIONS)
    assert confirmed.moves == []
    assert confirmed.plan.bookings_of("S-AXI-1")["infusion"].first_day == infusion


def test_released_bookings_are_planned_again_around_everyone_else(small):
    problem, plan = small
    released = plan.model_copy(update={"bookings": tuple(b for b in plan.bookings if b.patient != "S-AXI-2")})
    result = resolve(problem, released, _everything(released), OPTIONS)
    assert result.unplanned == sorted(["S-AXI-2", *(u.patient for u in plan.unschedulable)])
    assert "S-AXI-2" in result.plan.scheduled_patients()
    assert check_plan(problem, result.plan) == []
    assert result.moves == []  # its old place is free: no one else needs to move


def test_bookings_a_closure_breaks_are_moved_and_the_reason_is_the_broken_rule(small):
    problem, plan = small
    apheresis = plan.bookings_of("S-AXI-1")["apheresis"]
    closure = CapacityChange(
        resource="apheresis_machine",
        centre="liverpool",
        first_day=apheresis.first_day,
        last_day=apheresis.last_day,
        capacity=0,
        reason="machine service",
    )
    site = problem.site.model_copy(update={"capacity_changes": (*problem.site.capacity_changes, closure)})
    closed = dataclasses.replace(problem, site=site)
    assert any(v.rule == "CAPACITY" for v in check_plan(closed, plan))

    result = resolve(closed, plan, _everything(plan), OPTIONS)
    assert check_plan(closed, result.plan) == []
    assert "CAPACITY" in result.broken["S-AXI-1"]
    moved = {(m.patient, m.step) for m in result.moves}
    assert ("S-AXI-1", "apheresis") in moved
    assert result.plan.bookings_of("S-AXI-1")["apheresis"].first_day != apheresis.first_day


def test_frozen_steps_stay_where_they_are_while_the_rest_moves(small):
    problem, plan = small
    late = _shifted(plan, "S-AXI-1", 28)
    held = late.bookings_of("S-AXI-1")
    frozen = tuple(FrozenBooking(step=s, first_day=held[s].first_day) for s in ("apheresis", "manufacture"))
    patients = tuple(p.model_copy(update={"frozen": frozen}) if p.id == "S-AXI-1" else p for p in problem.patients)
    pinned = dataclasses.replace(problem, cohort=problem.cohort.model_copy(update={"patients": patients}))

    result = resolve(pinned, late, set(), OPTIONS)
    assert check_plan(pinned, result.plan) == []
    after = result.plan.bookings_of("S-AXI-1")
    assert after["apheresis"] == held["apheresis"] and after["manufacture"] == held["manufacture"]
    assert all(m.step not in ("apheresis", "manufacture") for m in result.moves)
