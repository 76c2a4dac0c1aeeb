"""The `small` cohort: every date worked out by hand from the default catalogue.

All nine patients are approved on Mon 04 Jan 2027 at the default site.

axi-cel (fresh, Mon-Thu collection; 28 days to product back; release on a
working day; LD on 3 consecutive day-unit days from the day after release;
infusion Mon-Thu, 2-14 days after LD ends). Alone: apheresis Tue 05 Jan ->
release Tue 02 Feb -> LD Wed 03..Fri 05 Feb -> infusion Mon 08 Feb (Wed 06 Jan
apheresis would push LD to the next week). Manufacturer slots are 2 a week, so
the routine patient S-AXI-1 moves to the next week's slot; the high-risk window
(4 places, days 0-14) is full from 08 to 15 Feb with S-AXI-2/3 and S-INH-1/2,
so S-AXI-1's infusion is Tue 16 Feb, with LD Wed 10..Fri 12 Feb, release Tue
09 Feb and apheresis Tue 12 Jan (the latest collection that is still in time,
for the shortest vein-to-vein).

in-house CAR-T (13-day device run from the collection day or the next; 7 days
QC; LD from the day after release; infusion 2-7 days after LD). Alone:
apheresis Thu 07 Jan, run 07..19 Jan, QC 20..26 Jan, LD Wed 27..Fri 29 Jan,
infusion Mon 01 Feb. Two devices: the routine S-INH-3 waits for a device
(free from Wed 20 Jan); with the high-risk window full until 15 Feb its
infusion is Tue 16 Feb: LD 10..12 Feb, QC 03..09 Feb, run from Thu 21 Jan,
collected the same day.

asct-mel200 with 2 harvest days: G-CSF days 1-4 then harvest on two working
days: Mon 11 + Tue 12 Jan (a Fri/Sat harvest is not allowed), G-CSF 07..10
Jan; melphalan the first working day after the day after cryopreservation,
Thu 14 Jan; reinfusion day 0 = Sat 16 Jan; 16 bed-days from 14 Jan.

allo-sct-fresh: 28 days of registry notice (04..31 Jan), Flu/Bu4 from Fri 29
Jan (it may start 3 days before the notice ends), donor collection Mon 01 +
Tue 02 Feb, fresh graft infused Tue 02 Feb.

S-NOFIT-1: last checkpoint inhibitor 01 Apr 2027 + 42 days = Thu 13 May, after
the horizon's last day (Mon 03 May).
"""

from __future__ import annotations

from datetime import date

import pytest

from pathway.cohort import load_problem
from pathway.rules import check_plan
from solver.solve import SolveOptions, solve
from tests.paths import COHORTS

D = date.fromisoformat

EXPECTED = {
    "S-AXI-1": {
        "apheresis": ("2027-01-12", "2027-01-12"),
        "manufacture": ("2027-01-12", "2027-02-08"),
        "release": ("2027-02-09", "2027-02-09"),
        "conditioning": ("2027-02-10", "2027-02-12"),
        "infusion": ("2027-02-16", "2027-02-16"),
        "inpatient": ("2027-02-16", "2027-02-25"),
        "high_risk_window": ("2027-02-16", "2027-03-02"),
    },
    "S-AXI-2": {
        "apheresis": ("2027-01-05", "2027-01-05"),
        "manufacture": ("2027-01-05", "2027-02-01"),
        "release": ("2027-02-02", "2027-02-02"),
        "conditioning": ("2027-02-03", "2027-02-05"),
        "infusion": ("2027-02-08", "2027-02-08"),
        "inpatient": ("2027-02-08", "2027-02-17"),
        "high_risk_window": ("2027-02-08", "2027-02-22"),
    },
    "S-INH-1": {
        "apheresis": ("2027-01-07", "2027-01-07"),
        "manufacture": ("2027-01-07", "2027-01-19"),
        "qc_release": ("2027-01-20", "2027-01-26"),
        "conditioning": ("2027-01-27", "2027-01-29"),
        "infusion": ("2027-02-01", "2027-02-01"),
        "inpatient": ("2027-02-01", "2027-02-10"),
        "high_risk_window": ("2027-02-01", "2027-02-15"),
    },
    "S-INH-3": {
        "apheresis": ("2027-01-21", "2027-01-21"),
        "manufacture": ("2027-01-21", "2027-02-02"),
        "qc_release": ("2027-02-03", "2027-02-09"),
        "conditioning": ("2027-02-10", "2027-02-12"),
        "infusion": ("2027-02-16", "2027-02-16"),
        "inpatient": ("2027-02-16", "2027-02-25"),
        "high_risk_window": ("2027-02-16", "2027-03-02"),
    },
    "S-ASCT-1": {
        "mobilisation": ("2027-01-07", "2027-01-10"),
        "harvest": ("2027-01-11", "2027-01-12"),
        "cryopreservation": ("2027-01-11", "2027-01-12"),
        "conditioning": ("2027-01-14", "2027-01-14"),
        "reinfusion": ("2027-01-16", "2027-01-16"),
        "inpatient": ("2027-01-14", "2027-01-29"),
    },
    "S-ALLO-1": {
        "donor_booking": ("2027-01-04", "2027-01-31"),
        "conditioning": ("2027-01-29", "2027-02-01"),
        "donor_collection": ("2027-02-01", "2027-02-02"),
        "infusion": ("2027-02-02", "2027-02-02"),
        "inpatient": ("2027-01-29", "2027-02-25"),
    },
}
# S-AXI-3 and S-INH-2 share S-AXI-2's and S-INH-1's dates.
EXPECTED["S-AXI-3"] = EXPECTED["S-AXI-2"]
EXPECTED["S-INH-2"] = EXPECTED["S-INH-1"]


@pytest.fixture(scope="module")
def problem():
    return load_problem(COHORTS / "small.json")


@pytest.fixture(scope="module")
def plan(problem):
    return solve(problem, "cp-sat", SolveOptions(time_limit=20, reproducible=True))


@pytest.mark.parametrize("patient", sorted(EXPECTED))
def test_every_date_is_the_hand_worked_one(plan, patient):
    booked = {step: (b.first_day, b.last_day) for step, b in plan.bookings_of(patient).items()}
    expected = {step: (D(a), D(b)) for step, (a, b) in EXPECTED[patient].items()}
    assert booked == expected


def test_plan_is_optimal_and_passes_the_checker(problem, plan):
    assert plan.stats["status"] == "OPTIMAL"
    assert check_plan(problem, plan) == []


def test_the_patient_whose_washout_ends_after_the_horizon_is_reported_with_the_reason(plan):
    (nofit,) = plan.unschedulable
    assert nofit.patient == "S-NOFIT-1"
    assert nofit.rule == "WASHOUT"
    assert "Thu 13 May 2027" in nofit.reason and "checkpoint inhibitor" in nofit.reason
    assert nofit.earliest_infusion is not None and nofit.earliest_infusion > D("2027-05-03")
    assert "S-NOFIT-1" not in plan.scheduled_patients()


def test_delays_name_the_full_resources(plan):
    outcomes = {o.patient: o for o in plan.outcomes}
    axi = outcomes["S-AXI-1"]
    assert axi.capacity_free_infusion == D("2027-02-08") and axi.infusion == D("2027-02-16")
    assert any("manufacturer_slot:axi-cel" in cell for cell in axi.delayed_by)
    assert any("high_risk_window" in cell for cell in axi.delayed_by)
    inh = outcomes["S-INH-3"]
    assert inh.capacity_free_infusion == D("2027-02-01")
    assert any("manufacturing_device" in cell for cell in inh.delayed_by)
    assert outcomes["S-AXI-3"].delayed_by == ()


def test_greedy_serves_first_come_and_pays_no_less_than_cp_sat(problem, plan):
    greedy = solve(problem, "greedy")
    assert check_plan(problem, greedy) == []
    assert plan.stats["objective"] <= greedy.stats["objective"]
    # Capacity-free dates are a lower bound for every patient.
    alone = solve(problem, "capacity-free")
    free = {o.patient: o.infusion for o in alone.outcomes}
    for o in plan.outcomes:
        assert o.infusion >= free[o.patient]
