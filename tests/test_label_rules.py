"""The rules the product labels set beyond the booked steps, each one end to end:

* PRESENCE: after a CAR-T infusion the patient attends / stays near the centre;
  a blackout there is refused by the checker, kept out by the solver, named by
  the explanation.
* RISK_WINDOW: the high-risk place (ICU back-up) covers 14 days after each dose,
  obe-cel's second dose included.
* IN_FLIGHT: a patient already infused keeps the stay and the high-risk place
  that follow; new patients are placed around them.
* Conditioning given again when the infusion can no longer fall in its window.
* The catalogue refuses templates that would let the solver break a rule.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from pathway.catalogue import load_catalogue
from pathway.cohort import load_problem, parse_cohort
from pathway.errors import InputError
from pathway.rules import check_plan, in_flight, presence, risk_window
from solver.explain import explain_patient
from solver.instance import build_instance
from solver.objective import cost_terms
from solver.solve import SolveOptions, solve
from tests.hand_plans import (
    AXI_CEL,
    codes,
    edited_catalogue,
    fresh_car_t,
    make_plan,
    make_problem,
    patient,
)
from tests.paths import COHORTS

D = date.fromisoformat
METHODS = ["cp-sat", "greedy"]


def _solve(problem, method):
    return solve(problem, method, SolveOptions(time_limit=5, reproducible=True))


def _cohort(start: str, *patients: dict, days: int = 200, capacity_changes: tuple = ()):
    return parse_cohort(
        {
            "name": "label-rules",
            "site": "default",
            "horizon": {"start": start, "days": days},
            "capacity_changes": list(capacity_changes),
            "patients": list(patients),
        }
    )


# ---------------------------------------------------------------------------
# PRESENCE
# ---------------------------------------------------------------------------
# The hand-worked axi-cel plan infuses on Mon 08 Feb 2027; the inpatient stay runs to Wed 17 Feb and the
# label asks the patient to stay near the centre for 4 weeks, to Sun 07 Mar.
WEDDING = {"first_day": "2027-02-20", "last_day": "2027-02-21", "reason": "family wedding"}


def test_presence_blackout_after_the_stay_but_inside_four_weeks_fails():
    problem = make_problem(patient(blackouts=[WEDDING]))
    found = check_plan(problem, make_plan(fresh_car_t(problem, "P001", **AXI_CEL)))
    assert [(v.rule, v.step, v.day) for v in found] == [("PRESENCE", "infusion", D("2027-02-08"))]
    assert "family wedding" in found[0].message and "28 days from infusion" in found[0].message


def test_presence_blackout_after_four_weeks_passes():
    later = {"first_day": "2027-03-08", "last_day": "2027-03-12", "reason": "holiday"}
    problem = make_problem(patient(blackouts=[later]))
    assert presence(problem, make_plan(fresh_car_t(problem, "P001", **AXI_CEL))) == []


@pytest.mark.parametrize("method", METHODS)
def test_solver_infuses_after_a_blackout_inside_the_presence_window(method):
    problem = make_problem(patient(blackouts=[WEDDING]))
    plan = _solve(problem, method)
    assert check_plan(problem, plan) == []
    infusion = plan.bookings_of("P001")["infusion"].first_day
    assert infusion > D("2027-02-21")  # no infusion in the 28 days before the wedding's last day


def test_regional_r0096_is_never_infused_in_the_blackouts_reach():
    """liso-cel asks >= 2 weeks near the centre; R-0096 is away from Sun 08 to Tue 17 Aug 2027."""
    problem = load_problem(COHORTS / "regional.json")
    instance = build_instance(problem)
    spec = next(p for p in instance.patients if p.id == "R-0096")
    infusion = spec.steps[spec.infusion]
    away = problem.patient("R-0096").blackouts
    for start in infusion.starts:
        window = {instance.date_of(start) + timedelta(days=i) for i in range(14)}
        assert not any(b.covers(d) for b in away for d in window), instance.date_of(start)
    assert D("2027-08-02") not in {instance.date_of(s) for s in infusion.starts}


def test_explanation_names_the_blackout_inside_the_presence_window():
    problem = make_problem(patient(blackouts=[WEDDING]))
    plan = _solve(problem, "greedy")
    text = explain_patient(problem, plan, "P001").text()
    assert "the patient is away Sat 20 Feb 2027 .. Sun 21 Feb 2027 (family wedding)" in text
    assert "inside the 28 days from infusion, when the patient must stay near the centre" in text


# ---------------------------------------------------------------------------
# RISK_WINDOW: obe-cel's second dose
# ---------------------------------------------------------------------------
def _obe_cel_plan(window_days: int):
    problem = make_problem(patient(pathway="obe-cel"))
    plan = _solve(problem, "greedy")
    assert check_plan(problem, plan) == []
    bookings = list(plan.bookings)
    window = next(b for b in bookings if b.step == "high_risk_window")
    shortened = window.model_copy(update={"last_day": window.first_day + timedelta(days=window_days - 1)})
    return problem, plan, make_plan([shortened if b is window else b for b in bookings])


def test_obe_cel_risk_window_covers_fourteen_days_after_the_second_dose():
    problem, plan, _ = _obe_cel_plan(26)
    booked = plan.bookings_of("P001")
    second = booked["infusion_dose_2"].first_day
    assert booked["high_risk_window"].last_day >= second + timedelta(days=14)
    assert risk_window(problem, plan) == []


def test_risk_window_of_fifteen_days_from_the_first_dose_only_fails():
    problem, plan, planted = _obe_cel_plan(15)
    found = check_plan(problem, planted)
    assert codes(found) == {"RISK_WINDOW", "STEP_DURATION"}
    second = plan.bookings_of("P001")["infusion_dose_2"].first_day
    risk = next(v for v in found if v.rule == "RISK_WINDOW")
    assert risk.step == "infusion_dose_2"
    assert risk.day == plan.bookings_of("P001")["high_risk_window"].first_day + timedelta(days=15)
    assert risk.day <= second + timedelta(days=14)


def test_catalogue_refuses_a_risk_window_that_misses_the_second_dose():
    def fifteen_days(template):
        next(s for s in template["steps"] if s["name"] == "high_risk_window")["duration_days"] = 15

    with pytest.raises(InputError) as refused:
        edited_catalogue("obe-cel", fifteen_days)
    assert "do not cover 15 days after infusion_dose_2" in str(refused.value)


# ---------------------------------------------------------------------------
# IN_FLIGHT: a patient infused before the horizon
# ---------------------------------------------------------------------------
INFUSED = [
    {"step": "apheresis", "first_day": "2027-01-04"},
    {"step": "manufacture", "first_day": "2027-01-04"},
    {"step": "release", "first_day": "2027-02-01"},
    {"step": "conditioning", "first_day": "2027-02-03"},
    {"step": "infusion", "first_day": "2027-02-08"},
]
# One bed from February to March: whoever holds it decides when a new transplant can be admitted.
ONE_BED = {"resource": "bed", "centre": "liverpool", "first_day": "2027-02-01", "last_day": "2027-03-31",
           "capacity": 1, "reason": "ward refurbishment"}  # fmt: skip


def _in_flight_cohort():
    infused = patient("I001", frozen=INFUSED)
    transplant = patient("A002", pathway="asct-mel200", approval="2027-02-10")
    return _cohort("2027-02-10", infused, transplant, capacity_changes=(ONE_BED,))


def test_steps_under_way_are_held_with_the_infusion():
    problem = _in_flight_cohort()
    held = problem.held(problem.patient("I001"))
    assert held.frozen["inpatient"] == D("2027-02-08")
    assert held.frozen["high_risk_window"] == D("2027-02-08")
    assert set(held.derived) == {"inpatient", "high_risk_window"}


@pytest.mark.parametrize("method", METHODS)
def test_infused_patient_keeps_stay_and_risk_place_and_new_patients_go_around(method):
    problem = _in_flight_cohort()
    plan = _solve(problem, method)
    assert plan.unschedulable == ()
    assert check_plan(problem, plan) == []
    infused = plan.bookings_of("I001")
    assert (infused["inpatient"].first_day, infused["inpatient"].last_day) == (D("2027-02-08"), D("2027-02-17"))
    assert infused["high_risk_window"].first_day == D("2027-02-08")
    # The transplant could be admitted on Wed 17 Feb alone on the site; the held bed pushes it past the stay.
    assert plan.bookings_of("A002")["inpatient"].first_day > infused["inpatient"].last_day


def test_a_held_step_moved_is_reported_as_frozen():
    problem = _in_flight_cohort()
    plan = _solve(problem, "greedy")
    stay = plan.bookings_of("I001")["inpatient"]
    later = stay.model_copy(update={"first_day": D("2027-02-10"), "last_day": D("2027-02-19")})
    found = check_plan(problem, make_plan([later if b == stay else b for b in plan.bookings]))
    frozen = [v for v in found if v.rule == "FROZEN_CHANGED"]
    assert [(v.step, v.day) for v in frozen] == [("inpatient", D("2027-02-08"))]
    assert "held with infusion on Mon 08 Feb 2027: already under way" in frozen[0].message


def test_infused_patient_listed_unschedulable_fails():
    problem = _in_flight_cohort()
    plan = _solve(problem, "greedy")
    held = problem.frozen(problem.patient("I001"))
    kept = [b for b in plan.bookings if b.patient != "I001" or b.step in held]
    from pathway.plan import Unschedulable

    dropped = make_plan(kept, unschedulable=(Unschedulable(patient="I001", rule="HORIZON", reason="dropped"),))
    found = in_flight(problem, dropped)
    assert [(v.rule, v.patient, v.step) for v in found] == [("IN_FLIGHT", "I001", "infusion")]


def test_product_in_qc_after_a_frozen_collection_is_refused_with_the_step_named():
    collected = patient("H001", pathway="in-house-car-t", frozen=[{"step": "apheresis", "first_day": "2027-01-04"}])
    with pytest.raises(InputError) as refused:
        _cohort("2027-01-20", collected)
    message = str(refused.value)
    assert "patients[0].frozen" in message and "patient H001: manufacture is tied to apheresis" in message


# ---------------------------------------------------------------------------
# Conditioning given again when the infusion slips past the label's window
# ---------------------------------------------------------------------------
CONDITIONED = INFUSED[:4]  # Flu/Cy Wed 03 - Fri 05 Feb 2027; axi-cel infusion 2..14 days after: Mon 08 - Sat 20 Feb


@pytest.mark.parametrize(
    ("start", "blackouts"),
    [
        ("2027-02-22", []),  # the whole window has passed
        ("2027-02-08", [{"first_day": "2027-02-08", "last_day": "2027-02-26", "reason": "infection"}]),
    ],
    ids=["window-passed", "blackout-over-window"],
)
@pytest.mark.parametrize("method", METHODS)
def test_conditioning_is_repeated_when_the_infusion_can_no_longer_fall_in_its_window(method, start, blackouts):
    problem = _cohort(start, patient("C001", frozen=CONDITIONED, blackouts=blackouts))
    held = problem.held(problem.patient("C001"))
    assert "conditioning" not in held.frozen and "conditioning" in held.repeated
    plan = _solve(problem, method)
    assert check_plan(problem, plan) == []
    booked = plan.bookings_of("C001")
    assert booked["conditioning"].first_day > D("2027-02-05")
    gap = (booked["infusion"].first_day - booked["conditioning"].last_day).days - 1
    assert 2 <= gap <= 14
    assert "is given again" in explain_patient(problem, plan, "C001").text()


def test_a_later_absence_never_repeats_conditioning():
    # A weekend away four weeks on falls inside the stay-near period of every infusion day left, but the
    # patient can be infused: giving lymphodepletion again is not the tool's call.
    away = {"first_day": "2027-03-06", "last_day": "2027-03-07", "reason": "weekend away"}
    problem = _cohort("2027-02-08", patient("C001", frozen=CONDITIONED, blackouts=[away]))
    assert problem.held(problem.patient("C001")).repeated == {}


def test_conditioning_booked_but_not_given_is_never_repeated():
    # Fixed for tomorrow by a coordinator, not given: a blackout over the window leaves it frozen.
    fixed = [*INFUSED[:3], {"step": "conditioning", "first_day": "2027-02-03"}]
    infection = {"first_day": "2027-02-05", "last_day": "2027-02-26", "reason": "infection"}
    problem = _cohort("2027-02-02", patient("C001", frozen=fixed, blackouts=[infection]))
    held = problem.held(problem.patient("C001"))
    assert held.repeated == {} and held.frozen["conditioning"] == D("2027-02-03")


def test_repeat_with_a_product_released_too_long_ago_is_reported_not_refused():
    # Released Mon 01 Feb, LD given Wed 03 Feb, window passed; by Mon 05 Apr LD cannot restart within
    # the 60 days the label allows after release: the patient is unschedulable, the cohort still loads.
    problem = _cohort("2027-04-05", patient("C001", frozen=CONDITIONED))
    assert "conditioning" in problem.held(problem.patient("C001")).repeated
    plan = _solve(problem, "greedy")
    assert [u.patient for u in plan.unschedulable] == ["C001"]
    assert check_plan(problem, plan) == []


@pytest.mark.parametrize("method", METHODS)
def test_infused_yesterday_keeps_the_stay_through_a_blackout_and_a_bed_closure(method):
    """Infused the day before the horizon: the stay and high-risk window are held, whatever comes."""
    away = {"first_day": "2027-02-10", "last_day": "2027-02-11", "reason": "family funeral"}
    closed = {"resource": "bed", "centre": "liverpool", "first_day": "2027-02-09", "last_day": "2027-02-09",
              "capacity": 0, "reason": "ward deep clean"}  # fmt: skip
    problem = _cohort("2027-02-09", patient("I001", frozen=INFUSED, blackouts=[away]), capacity_changes=(closed,))
    plan = _solve(problem, method)
    assert plan.unschedulable == ()
    booked = plan.bookings_of("I001")
    assert booked["inpatient"].first_day == booked["high_risk_window"].first_day == D("2027-02-08")
    # The conflicts are the checker's to report, not a reason to drop the patient.
    assert codes(check_plan(problem, plan)) == {"BLACKOUT", "CAPACITY", "PRESENCE"}


def test_conditioning_kept_while_the_window_is_open():
    problem = _cohort("2027-02-08", patient("C001", frozen=CONDITIONED))
    held = problem.held(problem.patient("C001"))
    assert held.frozen["conditioning"] == D("2027-02-03") and held.repeated == {}


# ---------------------------------------------------------------------------
# Catalogue: the rules' homes
# ---------------------------------------------------------------------------
def test_catalogue_refuses_a_fresh_graft_without_its_age_limit():
    def no_limit(template):
        template["graft_max_age_hours"] = None
        template["graft_preferred_age_hours"] = None

    with pytest.raises(InputError) as refused:
        edited_catalogue("allo-sct-fresh", no_limit)
    assert "a fresh graft is infused here, so the template needs graft_max_age_hours" in str(refused.value)


def test_catalogue_keeps_the_published_ranges_it_chose_from():
    catalogue = load_catalogue()
    washouts = {w.agent: w for w in catalogue.washout_sets["car_t"]}
    assert (
        washouts["checkpoint_inhibitor"].published_days.choice(42).startswith("the lower bound of the published 42-90")
    )
    qc = catalogue.template("in-house-car-t").step("qc_release")
    assert qc.published_days.choice(qc.duration_days).startswith("the lower bound of the published 7-14")


def test_every_car_t_template_says_where_the_patient_must_be_after_infusion():
    for template in load_catalogue().templates:
        if template.family.endswith("car_t"):
            assert template.presence and template.risk_window_days == 15, template.id


def test_mobilisation_choices_are_offered():
    problem = make_problem(
        patient("M001", pathway="asct-mel200-plerixafor"), patient("M002", pathway="asct-mel200-chemo-mobilisation")
    )
    plan = _solve(problem, "greedy")
    assert check_plan(problem, plan) == []
    plerixafor = plan.bookings_of("M001")
    assert plerixafor["harvest"].first_day == plerixafor["mobilisation"].first_day + timedelta(days=5)  # day 6
    chemo = plan.bookings_of("M002")
    assert 10 <= (chemo["harvest"].first_day - chemo["mobilisation"].first_day).days <= 14


def test_car_t_apheresis_may_take_four_days():
    problem = make_problem(patient(durations={"apheresis": 4}))
    plan = _solve(problem, "greedy")
    assert check_plan(problem, plan) == []
    apheresis = plan.bookings_of("P001")["apheresis"]
    assert (apheresis.last_day - apheresis.first_day).days == 3


# ---------------------------------------------------------------------------
# Fresh allo graft: 48 h preferred, 72 h the hard limit
# ---------------------------------------------------------------------------
def test_fresh_graft_older_than_48_hours_costs_more_than_a_day_of_waiting():
    problem = make_problem(patient("F001", pathway="allo-sct-fresh"))
    instance = build_instance(problem)
    spec = instance.patients[0]
    terms = cost_terms(spec, problem.site.objective)
    assert spec.graft_preferred_age_days == 2
    plan = _solve(problem, "cp-sat")
    assert check_plan(problem, plan) == []
    starts = [instance.day_of(plan.bookings_of("F001")[s.name].first_day) for s in spec.steps]
    collection, infusion = spec.collection, spec.infusion
    assert starts[infusion] - starts[collection] <= 2  # at most 48 h old
    older = list(starts)
    older[collection] = starts[infusion] - 3  # the same infusion from a graft collected 72 h before it
    weights = problem.site.objective
    assert terms.evaluate(older) - terms.evaluate(starts) >= weights.graft_over_preferred_age
    assert weights.graft_over_preferred_age > weights.approval_to_infusion * max(weights.urgency_weights.values())


# ---------------------------------------------------------------------------
# Tocilizumab: one dose on site per CAR-T patient from the infusion
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_a_tocilizumab_shortage_keeps_two_infusions_apart(method):
    shortage = {"resource": "tocilizumab_dose", "centre": "liverpool", "first_day": "2027-01-04",
                "last_day": "2027-06-30", "capacity": 1, "reason": "supply shortage"}  # fmt: skip
    problem = make_problem(patient("P001"), patient("P002"), capacity_changes=(shortage,))
    plan = _solve(problem, method)
    assert check_plan(problem, plan) == []
    first, second = sorted(
        (plan.bookings_of(p)["high_risk_window"] for p in ("P001", "P002")), key=lambda b: b.first_day
    )
    assert second.first_day > first.last_day  # the one dose on site is held for one patient at a time
