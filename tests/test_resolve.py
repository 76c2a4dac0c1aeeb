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


# -- the column generation pipeline (the default) against CP-SAT alone ---------------------------------
PIPELINE_COHORTS = ["small", "christmas", "oversubscribed", "regional"]


def _plain(problem: Problem) -> Problem:
    """The problem with the re-solve's own objective: no fair-waiting delay rates and no tail guard."""
    waiting = problem.site.objective.waiting.model_copy(update={"tail_guard": False, "delay_rates": ()})
    objective = problem.site.objective.model_copy(update={"waiting": waiting})
    return dataclasses.replace(problem, site=problem.site.model_copy(update={"objective": objective}))


def _disrupted(name: str) -> tuple[Problem, Plan, set[tuple[str, str]]]:
    """A fixture cohort planned and confirmed; then every booking in its first week is held (frozen) and
    the apheresis machines close on the busiest apheresis day after its second week."""
    problem = load_problem(COHORTS / f"{name}.json")
    plan = solve(problem, options=OPTIONS)
    start = problem.horizon.start
    held = {
        p.id: tuple(
            FrozenBooking(step=b.step, first_day=b.first_day)
            for b in plan.bookings_of(p.id).values()
            if b.first_day < start + timedelta(days=7)
        )
        for p in problem.patients
    }
    patients = tuple(p.model_copy(update={"frozen": held[p.id]}) if held[p.id] else p for p in problem.patients)
    days = [b.first_day for b in plan.bookings if b.step in ("apheresis", "harvest")]
    later = [d for d in days if d >= start + timedelta(days=14)]
    busiest = max(sorted(set(later)), key=later.count)
    closure = CapacityChange(
        resource="apheresis_machine",
        centre="liverpool",
        first_day=busiest,
        last_day=busiest,
        capacity=0,
        reason="machine service",
    )
    site = problem.site.model_copy(update={"capacity_changes": (*problem.site.capacity_changes, closure)})
    cohort = problem.cohort.model_copy(update={"patients": patients})
    disrupted = dataclasses.replace(problem, site=site, cohort=cohort)
    assert any(v.rule == "CAPACITY" for v in check_plan(disrupted, plan))
    return disrupted, plan, _everything(plan)


@pytest.mark.parametrize("name", PIPELINE_COHORTS)
def test_the_pipeline_re_solves_a_closure_no_worse_than_cp_sat_and_holds_every_guarantee(name):
    problem, plan, confirmed = _disrupted(name)
    pipeline = resolve(problem, plan, confirmed, OPTIONS)
    cp_sat = resolve(problem, plan, confirmed, OPTIONS, method="cp-sat")
    assert check_plan(problem, pipeline.plan) == []
    s = pipeline.stats
    assert s["objective_with_moves"] <= cp_sat.stats["objective_with_moves"]
    assert s["objective_with_moves"] < s["repair_objective"] or pipeline.moves == []  # moves only for a gain
    # the proven bound is below every plan, and what proved it is said
    assert s["best_bound"] <= min(s["objective_with_moves"], cp_sat.stats["objective_with_moves"])
    assert s["bound_method"].startswith("colgen-") or s["bound_method"] == "cp-sat"
    assert 0 <= s["time_to_bound_s"] <= s["wall_time_s"] and 0 <= s["time_to_plan_s"] <= s["wall_time_s"]
    # held (frozen) bookings never move; every schedule that still stood is kept
    after = {(b.patient, b.step): b for b in pipeline.plan.bookings}
    for patient in problem.patients:
        for held in patient.frozen:
            assert after[patient.id, held.step].first_day == held.first_day
    standing = plan.scheduled_patients() - set(pipeline.broken)
    assert standing <= pipeline.plan.scheduled_patients()
    # nobody is left out silently: every patient is scheduled or listed unschedulable with a reason
    refused = {u.patient: u.reason for u in pipeline.plan.unschedulable}
    assert pipeline.plan.scheduled_patients() | set(refused) == {p.id for p in problem.patients}
    assert all(refused.values())


@pytest.mark.parametrize("name", PIPELINE_COHORTS)
def test_with_no_disruption_the_pipeline_proves_the_current_plan_and_moves_nothing(name):
    """The current plan is the proven optimum of the re-solve's own objective: no move can gain."""
    problem = _plain(load_problem(COHORTS / f"{name}.json"))
    plan = solve(problem, options=OPTIONS)
    assert plan.stats["status"] == "OPTIMAL"
    result = resolve(problem, plan, set(), OPTIONS)
    assert result.moves == [] and result.stats["method"] == "repair"
    assert check_plan(problem, result.plan) == []
    assert result.stats["status"] == "OPTIMAL" and result.stats["best_bound"] == result.stats["objective"]
