"""Every plan the solver makes passes the independent checker.

Fixture cohorts, bank-holiday cohorts, generated cohorts (hypothesis), and
re-solves with frozen bookings.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings

from pathway.catalogue import StepKind, load_catalogue
from pathway.cohort import load_problem, parse_cohort
from pathway.rules import check_plan
from solver.solve import SolveOptions, solve
from tests.builders import assert_complete_and_clean
from tests.paths import COHORTS
from tests.strategies import cohorts

D = date.fromisoformat
FIXTURES = sorted(p.stem for p in COHORTS.glob("*.json") if p.stem != "national")
TEMPLATES = sorted(t.id for t in load_catalogue().templates)
WITH_VARIANTS = sorted(t.id for t in load_catalogue().with_remanufacture().templates)
COLLECTION_KINDS = {StepKind.apheresis, StepKind.donor_collection, StepKind.processing}


def _solve(problem, limit=3.0):
    return solve(problem, "cp-sat", SolveOptions(time_limit=limit, reproducible=True))


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_cohort_plan_is_clean_and_beats_or_ties_greedy(name):
    problem = load_problem(COHORTS / f"{name}.json")
    plan = _solve(problem)
    assert_complete_and_clean(problem, plan)
    greedy = solve(problem, "greedy")
    assert_complete_and_clean(problem, greedy)
    assert "fallback" not in plan.stats
    assert plan.stats["objective"] <= greedy.stats["objective"]
    assert plan.stats["best_bound"] <= plan.stats["objective"]


@pytest.mark.parametrize("template", WITH_VARIANTS)
def test_every_template_alone_gets_a_clean_plan(template):
    """A new product in the catalogue is solved and checked here without a line of test to add."""
    problem = parse_cohort(
        {
            "name": f"one-{template}",
            "site": "default",
            "horizon": {"start": "2027-01-04", "days": 200},
            "patients": [{"id": "T001", "centre": "liverpool", "pathway": template, "approval_date": "2027-01-04"}],
        },
        catalogue=load_catalogue().with_remanufacture(),
    )
    for method in ("greedy", "cp-sat"):
        plan = solve(problem, method, SolveOptions(time_limit=3.0, reproducible=True))
        assert plan.unschedulable == () and check_plan(problem, plan) == [], (method, plan.unschedulable)


def test_national_cohort_plan_is_clean():
    problem = load_problem(COHORTS / "national.json")
    assert len(problem.patients) >= 1000 and len(problem.site.centres) >= 8
    plan = solve(problem, "cp-sat", SolveOptions(time_limit=30))
    assert_complete_and_clean(problem, plan)


BANK_HOLIDAYS = {
    "christmas": [D("2026-12-25"), D("2026-12-28"), D("2027-01-01")],  # Boxing Day observed on Mon 28 Dec
    "easter": [D("2027-03-26"), D("2027-03-29")],  # Good Friday, Easter Monday
}


@pytest.mark.parametrize("name", sorted(BANK_HOLIDAYS))
def test_no_collection_or_car_t_infusion_on_bank_holidays(name):
    problem = load_problem(COHORTS / f"{name}.json")
    plan = _solve(problem)
    holidays = BANK_HOLIDAYS[name]
    collections = []
    for patient in problem.patients:
        template = problem.template(patient)
        for step_name, booking in plan.bookings_of(patient.id).items():
            kind = template.step(step_name).kind
            if kind in COLLECTION_KINDS:
                collections.extend(booking.days())
                assert not set(booking.days()) & set(holidays), f"{patient.id} {step_name} on a bank holiday"
            if kind == StepKind.infusion and template.family.endswith("car_t"):
                for holiday in holidays:
                    assert booking.first_day not in (holiday, holiday.fromordinal(holiday.toordinal() - 1))
    # Not vacuous: the cohort does collect in the fortnight around the holidays.
    assert any(abs((day - holidays[0]).days) <= 14 for day in collections)


def test_frozen_booking_is_kept_and_others_move_around_it():
    """S-AXI-1 (routine) already had its apheresis on Tue 05 Jan: the axi-cel
    slots of that week are then 1 for S-AXI-2 (soon) and S-AXI-3 (urgent), so
    the less urgent S-AXI-2 moves to the next week's slot."""
    raw = load_problem(COHORTS / "small.json").cohort.model_dump(mode="json")
    for patient in raw["patients"]:
        if patient["id"] == "S-AXI-1":
            patient["frozen"] = [{"step": "apheresis", "first_day": "2027-01-05"}]
    problem = parse_cohort(raw)
    plan = _solve(problem)
    assert_complete_and_clean(problem, plan)
    assert plan.bookings_of("S-AXI-1")["apheresis"].first_day == D("2027-01-05")
    assert plan.bookings_of("S-AXI-1")["infusion"].first_day == D("2027-02-08")
    assert plan.bookings_of("S-AXI-3")["infusion"].first_day == D("2027-02-08")
    assert plan.bookings_of("S-AXI-2")["apheresis"].first_day >= D("2027-01-11")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=cohorts(max_size=30))
def test_generated_cohorts_get_clean_plans_or_explained_refusals(problem):
    plan = _solve(problem, limit=5.0)
    assert_complete_and_clean(problem, plan)
    greedy = solve(problem, "greedy")
    assert_complete_and_clean(problem, greedy)
    assert "fallback" not in plan.stats
    assert plan.stats["objective"] <= greedy.stats["objective"]


def _one_centre_cohort(patients, capacity_changes=(), days=120):
    return parse_cohort(
        {
            "name": "frozen-edge",
            "horizon": {"start": "2027-01-04", "days": days},
            "capacity_changes": list(capacity_changes),
            "patients": patients,
        }
    )


def test_unschedulable_patient_keeps_frozen_bookings_and_their_capacity():
    """X-DONE already had apheresis on Tue 05 Jan, the only session that day, but a
    live vaccine pushes its lymphodepletion past the horizon. Its session stays
    booked, so Y cannot take Tue 05 Jan."""
    problem = _one_centre_cohort(
        [
            {
                "id": "X-DONE",
                "centre": "liverpool",
                "pathway": "in-house-car-t",
                "approval_date": "2027-01-04",
                "last_doses": {"live_vaccine": "2027-04-20"},
                "frozen": [{"step": "apheresis", "first_day": "2027-01-05"}],
            },
            {"id": "Y-NEXT", "centre": "liverpool", "pathway": "in-house-car-t", "approval_date": "2027-01-04"},
        ],
        capacity_changes=[
            {
                "resource": "apheresis_machine",
                "centre": "liverpool",
                "first_day": "2027-01-04",
                "last_day": "2027-01-08",
                "capacity": 1,
                "reason": "staff shortage",
            }
        ],
    )
    plan = _solve(problem)
    assert_complete_and_clean(problem, plan)
    assert [u.patient for u in plan.unschedulable] == ["X-DONE"]
    kept = plan.bookings_of("X-DONE")
    assert list(kept) == ["apheresis"] and kept["apheresis"].first_day == D("2027-01-05")
    assert plan.bookings_of("Y-NEXT")["apheresis"].first_day != D("2027-01-05")


def test_patient_wholly_in_the_past_with_a_missed_target_stays_scheduled():
    """Every step of Z-PAST was done before the horizon (infusion Mon 07 Dec 2026),
    a week after the target date it missed: the solve must not drop it."""
    days = {
        "apheresis": "2026-11-09",
        "manufacture": "2026-11-09",
        "qc_release": "2026-11-22",
        "conditioning": "2026-11-30",
        "infusion": "2026-12-07",
        "inpatient": "2026-12-07",
        "high_risk_window": "2026-12-07",
    }
    problem = _one_centre_cohort(
        [
            {
                "id": "Z-PAST",
                "centre": "liverpool",
                "pathway": "in-house-car-t",
                "approval_date": "2026-11-02",
                "target_infusion_date": "2026-11-30",
                "frozen": [{"step": s, "first_day": d} for s, d in days.items()],
            }
        ]
    )
    plan = _solve(problem)
    assert_complete_and_clean(problem, plan)
    assert plan.unschedulable == ()
    assert {s: b.first_day.isoformat() for s, b in plan.bookings_of("Z-PAST").items()} == days


def test_patients_who_cannot_fit_are_told_which_of_their_own_rules_blocks_them():
    problem = load_problem(COHORTS / "cannot_fit.json")
    plan = _solve(problem)
    assert_complete_and_clean(problem, plan)
    reasons = {u.patient: u for u in plan.unschedulable}
    assert set(reasons) == {"X-NOFIT-1", "X-NOFIT-2"}
    washout, blackout = reasons["X-NOFIT-1"], reasons["X-NOFIT-2"]
    assert washout.rule == "WASHOUT" and "checkpoint inhibitor" in washout.reason
    assert blackout.rule == "BLACKOUT" and "25 Jan .. 31 Jul 2027" in blackout.reason
    for refusal in (washout, blackout):
        assert refusal.earliest_infusion > problem.horizon.end
