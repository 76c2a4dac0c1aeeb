"""Tests of the independent rule checker (pathway/rules.py).

Every plan here is worked out by hand from pathway/data/pathways.yaml and
the default site; no solver code is involved. Each rule has at least one plan
that passes it and one that fails it with its own code.

Bank holidays used below (England, from the `holidays` library):
  2026: Fri 03 Apr Good Friday, Mon 06 Apr Easter Monday, Fri 25 Dec Christmas
        Day, Sat 26 Dec Boxing Day, Mon 28 Dec Boxing Day (observed)
  2027: Fri 01 Jan New Year's Day, Fri 26 Mar Good Friday, Mon 29 Mar Easter
        Monday, Mon 03 May May Day, Mon 27 Dec Christmas Day (observed),
        Tue 28 Dec Boxing Day (observed)
"""

from __future__ import annotations

from datetime import date

import pytest

from pathway.catalogue import load_catalogue
from pathway.cohort import Problem
from pathway.errors import InputError
from pathway.plan import Booking, Plan, Unschedulable
from pathway.rules import RULES, check_plan
from tests.hand_plans import (
    ALLO_FRESH,
    ASCT,
    AXI_CEL,
    D,
    allo_fresh,
    asct_mel200,
    axi_cel_case,
    car_t_dates,
    codes,
    edited_catalogue,
    fresh_car_t,
    make_plan,
    make_problem,
    moved,
    patient,
    unchecked_catalogue,
    without,
)


# ---------------------------------------------------------------------------
# The hand-worked baselines are clean, for every rule
# ---------------------------------------------------------------------------
def three_pathway_case() -> tuple[Problem, Plan]:
    problem = make_problem(
        patient("P001"), patient("A002", pathway="asct-mel200"), patient("F003", pathway="allo-sct-fresh")
    )
    plan = make_plan(
        fresh_car_t(problem, "P001", **AXI_CEL),
        asct_mel200(problem, "A002", **ASCT),
        allo_fresh(problem, "F003", **ALLO_FRESH),
    )
    return problem, plan


def test_hand_worked_plans_are_clean():
    problem, plan = three_pathway_case()
    assert check_plan(problem, plan) == []


@pytest.mark.parametrize("code", sorted(RULES))
def test_each_rule_passes_the_hand_worked_plans(code):
    problem, plan = three_pathway_case()
    assert RULES[code](problem, plan) == []


def test_rules_registry_names_every_rule():
    assert list(RULES) == [
        "UNKNOWN_BOOKING", "STEP_MISSING", "STEP_DURATION", "STEP_LAG", "INFUSION_WINDOW",
        "RELEASE_BEFORE_CONDITIONING", "GRAFT_AGE", "CALENDAR", "CAPACITY", "EARLIEST_START",
        "WASHOUT", "BLACKOUT", "FROZEN_CHANGED", "IN_FLIGHT", "PRESENCE", "RISK_WINDOW",
    ]  # fmt: skip


def test_violations_are_sorted_by_day_and_export_as_dicts():
    problem, bookings = axi_cel_case(blackouts=[{"first_day": "2027-02-08", "last_day": "2027-02-08"}])
    bookings = moved(bookings, "apheresis", D("2027-01-01"))  # Fri, New Year's Day; also a STEP_LAG
    found = check_plan(problem, make_plan(bookings))
    days = [v.day for v in found]
    assert days == sorted(days)
    assert found[0].model_dump()["rule"] in RULES
    assert set(found[0].model_dump()) == {"rule", "patient", "step", "day", "message"}


# ---------------------------------------------------------------------------
# UNKNOWN_BOOKING
# ---------------------------------------------------------------------------
def test_unknown_patient_is_reported():
    problem, bookings = axi_cel_case()
    stray = Booking(patient="X999", step="apheresis", first_day=D("2027-01-05"), last_day=D("2027-01-05"))
    found = check_plan(problem, make_plan(bookings, [stray]))
    assert codes(found) == {"UNKNOWN_BOOKING"}
    assert "X999" in found[0].message


def test_step_not_in_pathway_is_reported():
    problem, bookings = axi_cel_case()
    stray = Booking(patient="P001", step="bridging", first_day=D("2027-01-05"), last_day=D("2027-01-05"))
    found = check_plan(problem, make_plan(bookings, [stray]))
    assert codes(found) == {"UNKNOWN_BOOKING"}
    assert found[0].step == "bridging"


def test_step_booked_twice_is_reported():
    problem, bookings = axi_cel_case()
    again = Booking(patient="P001", step="release", first_day=D("2027-02-02"), last_day=D("2027-02-02"))
    found = check_plan(problem, make_plan(bookings, [again]))
    assert codes(found) == {"UNKNOWN_BOOKING"}
    assert found[0].day == D("2027-02-02")


# ---------------------------------------------------------------------------
# STEP_MISSING
# ---------------------------------------------------------------------------
def test_missing_step_of_a_booked_patient():
    problem, bookings = axi_cel_case()
    found = check_plan(problem, make_plan(without(bookings, "infusion")))
    assert codes(found) == {"STEP_MISSING"}
    assert [(v.patient, v.step) for v in found] == [("P001", "infusion")]


def test_unbooked_patient_listed_unschedulable_passes():
    problem = make_problem(patient("P001"), patient("P002"))
    unschedulable = (Unschedulable(patient="P002", rule="CAPACITY", reason="no manufacturer slot in the horizon"),)
    plan = make_plan(fresh_car_t(problem, "P001", **AXI_CEL), unschedulable=unschedulable)
    assert check_plan(problem, plan) == []


def test_unbooked_patient_not_listed_unschedulable_fails():
    problem = make_problem(patient("P001"), patient("P002"))
    found = check_plan(problem, make_plan(fresh_car_t(problem, "P001", **AXI_CEL)))
    assert codes(found) == {"STEP_MISSING"}
    assert found[0].patient == "P002"


def test_patient_both_booked_and_unschedulable_fails():
    problem, bookings = axi_cel_case()
    unschedulable = (Unschedulable(patient="P001", rule="CAPACITY", reason="no slot"),)
    assert codes(check_plan(problem, make_plan(bookings, unschedulable=unschedulable))) == {"STEP_MISSING"}


# ---------------------------------------------------------------------------
# STEP_DURATION
# ---------------------------------------------------------------------------
def test_inpatient_stay_one_day_short():
    problem, bookings = axi_cel_case()
    bookings = moved(bookings, "inpatient", D("2027-02-08"), D("2027-02-16"))
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"STEP_DURATION"}
    assert "9 days" in found[0].message and "10 days" in found[0].message


def test_two_day_apheresis_override_passes_when_booked_for_two_days():
    # Mon-Tue, both fresh-shipment days; the product ships on the last collection day (Tue 05 Jan),
    # so manufacture ends Tue 02 Feb and release is that day.
    problem = make_problem(patient(durations={"apheresis": 2}))
    bookings = moved(fresh_car_t(problem, "P001", **AXI_CEL), "manufacture", D("2027-01-05"))
    bookings = moved(bookings, "release", D("2027-02-02"))
    assert bookings[0].last_day == D("2027-01-05")
    assert check_plan(problem, make_plan(bookings)) == []


def test_fresh_product_shipped_on_the_first_of_two_collection_days_fails():
    problem, bookings = axi_cel_case(durations={"apheresis": 2})
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.step) for v in found] == [("STEP_LAG", "manufacture")]


def test_two_day_apheresis_override_fails_when_booked_for_one_day():
    problem, bookings = axi_cel_case(durations={"apheresis": 2})
    bookings = moved(bookings, "apheresis", D("2027-01-04"), D("2027-01-04"))
    assert codes(check_plan(problem, make_plan(bookings))) == {"STEP_DURATION"}


# ---------------------------------------------------------------------------
# STEP_LAG
# ---------------------------------------------------------------------------
def test_release_four_days_after_manufacture_passes():
    # manufacture ends Sun 31 Jan; release Fri 05 Feb is lag 4 (max 4); LD Mon 08 - Wed 10 Feb; infusion Mon 15 Feb.
    problem = make_problem(patient())
    bookings = fresh_car_t(problem, "P001", D("2027-01-04"), D("2027-02-05"), D("2027-02-08"), D("2027-02-15"))
    assert check_plan(problem, make_plan(bookings)) == []


def test_release_a_week_after_manufacture_fails():
    # release Mon 08 Feb is lag 7 > 4; LD Wed 10 - Fri 12 Feb; infusion Mon 15 Feb.
    problem = make_problem(patient())
    bookings = fresh_car_t(problem, "P001", D("2027-01-04"), D("2027-02-08"), D("2027-02-10"), D("2027-02-15"))
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"STEP_LAG"}
    assert found[0].step == "release" and "7 days after the end of manufacture" in found[0].message


# ---------------------------------------------------------------------------
# INFUSION_WINDOW
# ---------------------------------------------------------------------------
def test_infusion_fourteen_days_after_conditioning_passes():
    # LD Mon 08 - Wed 10 Feb (ends: Thu 11 Feb); infusion Thu 25 Feb is the last day of the 2..14 window.
    problem = make_problem(patient())
    bookings = fresh_car_t(problem, "P001", D("2027-01-04"), D("2027-02-01"), D("2027-02-08"), D("2027-02-25"))
    assert check_plan(problem, make_plan(bookings)) == []


def test_infusion_too_early_after_conditioning():
    # LD Mon 08 - Wed 10 Feb; infusion Thu 11 Feb is lag 0 < 2 (Thursday is an infusion day).
    problem = make_problem(patient())
    bookings = fresh_car_t(problem, "P001", D("2027-01-04"), D("2027-02-01"), D("2027-02-08"), D("2027-02-11"))
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"INFUSION_WINDOW"}
    assert found[0].patient == "P001" and found[0].day == D("2027-02-11")
    assert "0 days after the end of conditioning" in found[0].message


def test_infusion_too_late_after_conditioning():
    # LD Wed 03 - Fri 05 Feb; infusion Mon 22 Feb is lag 16 > 14: LD would have to be repeated.
    problem, bookings = axi_cel_case()
    bookings = fresh_car_t(problem, "P001", **{**AXI_CEL, "infusion": D("2027-02-22")})
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"INFUSION_WINDOW"}
    assert "Mon 22 Feb 2027" in found[0].message
    assert "16 days after" in found[0].message and "14 days after" in found[0].message


# ---------------------------------------------------------------------------
# RELEASE_BEFORE_CONDITIONING
# ---------------------------------------------------------------------------
def test_conditioning_on_the_release_day_fails():
    problem, bookings = axi_cel_case()
    bookings = moved(bookings, "conditioning", D("2027-02-01"))  # Mon 01 - Wed 03 Feb; infusion lag 4
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"RELEASE_BEFORE_CONDITIONING"}
    assert any("Mon 01 Feb 2027" in v.message and "P001" in v.message for v in found)


def test_conditioning_during_manufacture_fails():
    problem, bookings = axi_cel_case()
    bookings = moved(bookings, "conditioning", D("2027-01-27"))  # Wed 27 - Fri 29 Jan; infusion Mon 08 Feb lag 9
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"RELEASE_BEFORE_CONDITIONING"}


def drop_release_lag(template):
    next(s for s in template["steps"] if s["name"] == "conditioning")["lags"] = []


def test_catalogue_refuses_conditioning_not_tied_to_the_release():
    with pytest.raises(InputError) as refused:
        edited_catalogue("axi-cel", drop_release_lag)
    assert "templates[0]: steps[3] (conditioning): conditioning must be tied to the product's release" in str(
        refused.value
    )


def test_release_rule_holds_by_step_kind_even_without_the_catalogue_lag():
    # The catalogue refuses such a template (above); built around its validation, the checker still catches it.
    axi_cel = load_catalogue().template("axi-cel")
    steps = tuple(s.model_copy(update={"lags": ()}) if s.name == "conditioning" else s for s in axi_cel.steps)
    catalogue = unchecked_catalogue("axi-cel", steps=steps)
    problem = make_problem(patient(), catalogue=catalogue)
    clean = fresh_car_t(problem, "P001", **AXI_CEL)
    assert check_plan(problem, make_plan(clean)) == []
    found = check_plan(problem, make_plan(moved(clean, "conditioning", D("2027-02-01"))))
    assert [(v.rule, v.step) for v in found] == [("RELEASE_BEFORE_CONDITIONING", "conditioning")]
    assert "release" in found[0].message


def test_asct_conditioning_after_cryopreservation_passes():
    problem = make_problem(patient(pathway="asct-mel200"))
    assert check_plan(problem, make_plan(asct_mel200(problem, "P001", **ASCT))) == []


def test_asct_conditioning_on_the_cryopreservation_day_fails():
    # Harvest and cryopreservation Fri 08 Jan; Mel200 the same Friday, before the harvest is stored.
    problem = make_problem(patient(pathway="asct-mel200"))
    bookings = asct_mel200(problem, "P001", D("2027-01-08"), D("2027-01-08"))
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"RELEASE_BEFORE_CONDITIONING"}
    assert any("cryopreservation" in v.message and "Fri 08 Jan 2027" in v.message for v in found)


# ---------------------------------------------------------------------------
# GRAFT_AGE
# ---------------------------------------------------------------------------
def test_fresh_graft_72_hours_old_passes():
    # Collection Wed 03 - Thu 04 Feb, infusion Sat 06 Feb: 3 days = 72 h, the limit.
    problem = make_problem(patient(pathway="allo-sct-fresh"))
    bookings = allo_fresh(problem, "P001", D("2027-02-01"), D("2027-02-03"), D("2027-02-06"))
    assert check_plan(problem, make_plan(bookings)) == []


def test_catalogue_refuses_a_graft_age_lag_beyond_the_limit():
    with pytest.raises(InputError) as refused:
        edited_catalogue("allo-sct-fresh", lambda t: t.update(graft_max_age_hours=48, graft_preferred_age_hours=None))
    assert "within graft_max_age_hours (48 h)" in str(refused.value)


def test_fresh_graft_older_than_the_template_limit_fails():
    catalogue = unchecked_catalogue("allo-sct-fresh", graft_max_age_hours=48, graft_preferred_age_hours=None)
    problem = make_problem(patient(pathway="allo-sct-fresh"), catalogue=catalogue)
    bookings = allo_fresh(problem, "P001", D("2027-02-01"), D("2027-02-03"), D("2027-02-06"))
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"GRAFT_AGE"}
    assert "72 hours" in found[0].message and "48 hours" in found[0].message


def test_fresh_graft_collected_too_early_fails():
    # Collection Mon 01 - Tue 02 Feb, infusion Fri 05 Feb: 96 h. The collection also breaks its own
    # lag to conditioning (must start 0-2 days before conditioning ends), hence STEP_LAG as well.
    problem = make_problem(patient(pathway="allo-sct-fresh"))
    bookings = allo_fresh(problem, "P001", D("2027-02-01"), D("2027-02-01"), D("2027-02-05"))
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"GRAFT_AGE", "STEP_LAG"}
    assert any(v.rule == "GRAFT_AGE" and "96 hours" in v.message for v in found)


def test_infusion_before_the_graft_is_collected_fails():
    problem = make_problem(patient(pathway="allo-sct-fresh"))
    bookings = allo_fresh(problem, "P001", D("2027-02-01"), D("2027-02-04"), D("2027-02-03"))
    found = check_plan(problem, make_plan(bookings))
    assert "GRAFT_AGE" in codes(found)
    assert any(v.rule == "GRAFT_AGE" and "before the graft is collected" in v.message for v in found)


# ---------------------------------------------------------------------------
# CALENDAR
# ---------------------------------------------------------------------------
# ASCT harvest (working_day, every day) on a bank holiday; conditioning on the first working day >= 2
# days after the harvest. Cryopreservation is on the harvest day too, so it is reported as well.
BANK_HOLIDAY_HARVESTS = [
    ("2026-04-03", "2026-04-07", "Good Friday"),
    ("2026-04-06", "2026-04-08", "Easter Monday"),
    ("2026-12-25", "2026-12-29", "Christmas Day"),
    ("2026-12-28", "2026-12-30", "Boxing Day (observed)"),
    ("2027-03-26", "2027-03-30", "Good Friday"),
    ("2027-03-29", "2027-03-31", "Easter Monday"),
    ("2027-12-27", "2027-12-29", "Christmas Day (observed)"),
    ("2027-12-28", "2027-12-30", "Boxing Day (observed)"),
]


@pytest.mark.parametrize("harvest, conditioning, holiday", BANK_HOLIDAY_HARVESTS)
def test_harvest_on_a_bank_holiday_fails(harvest, conditioning, holiday):
    problem = make_problem(patient(pathway="asct-mel200", approval="2026-03-01"))
    bookings = asct_mel200(problem, "P001", D(harvest), D(conditioning))
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"CALENDAR"}
    assert {v.step for v in found} == {"harvest", "cryopreservation"}
    harvest_violation = next(v for v in found if v.step == "harvest")
    assert harvest_violation.day == D(harvest)
    assert f"bank holiday ({holiday})" in harvest_violation.message


def test_harvest_on_an_ordinary_tuesday_passes():
    problem = make_problem(patient(pathway="asct-mel200", approval="2026-03-01"))
    bookings = asct_mel200(problem, "P001", D("2026-04-07"), D("2026-04-09"))
    assert check_plan(problem, make_plan(bookings)) == []


def test_fresh_apheresis_on_easter_monday_fails():
    # Apheresis Mon 29 Mar 2027 (Easter Monday); manufacture to Sun 25 Apr; release Mon 26 Apr;
    # LD Wed 28 - Fri 30 Apr; infusion Tue 04 May (Mon 03 May is May Day).
    # The same-day shipment to the manufacturer is on the bank holiday too.
    problem = make_problem(patient())
    bookings = fresh_car_t(problem, "P001", D("2027-03-29"), D("2027-04-26"), D("2027-04-28"), D("2027-05-04"))
    found = check_plan(problem, make_plan(bookings))
    assert sorted((v.rule, v.step, v.day) for v in found) == [
        ("CALENDAR", "apheresis", D("2027-03-29")),
        ("CALENDAR", "manufacture", D("2027-03-29")),
    ]
    assert all("Easter Monday" in v.message for v in found)


def test_infusion_on_a_friday_fails():
    problem, bookings = axi_cel_case()
    bookings = fresh_car_t(problem, "P001", **{**AXI_CEL, "infusion": D("2027-02-12")})  # lag 6 from LD end
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.step) for v in found] == [("CALENDAR", "infusion")]
    assert "Fri 12 Feb 2027" in found[0].message and "Mon/Tue/Wed/Thu only" in found[0].message


def test_infusion_on_the_day_before_good_friday_fails():
    # Apheresis Mon 08 Feb; manufacture to Sun 07 Mar; release Mon 08 Mar; LD Mon 15 - Wed 17 Mar;
    # infusion Thu 25 Mar 2027 (lag 7), the day before Good Friday.
    problem = make_problem(patient())
    bookings = fresh_car_t(problem, "P001", D("2027-02-08"), D("2027-03-08"), D("2027-03-15"), D("2027-03-25"))
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.step) for v in found] == [("CALENDAR", "infusion")]
    assert "day before a bank holiday (Good Friday)" in found[0].message


def test_conditioning_over_a_weekend_fails_on_each_closed_day():
    problem, bookings = axi_cel_case()
    # LD Fri 05 - Sun 07 Feb (every day must be a day-unit day); infusion Wed 10 Feb (lag 2).
    bookings = fresh_car_t(problem, "P001", **{**AXI_CEL, "conditioning": D("2027-02-05"), "infusion": D("2027-02-10")})
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.day) for v in found] == [("CALENDAR", D("2027-02-06")), ("CALENDAR", D("2027-02-07"))]


# ---------------------------------------------------------------------------
# CAPACITY
# ---------------------------------------------------------------------------
def brexu_cel(problem: Problem, pid: str) -> list[Booking]:
    # Apheresis Mon 04 Jan; manufacture 17 d to Wed 20 Jan; release Thu 21 Jan; LD Mon 25 - Wed 27 Jan;
    # infusion Mon 01 Feb (lag 4).
    return fresh_car_t(problem, pid, D("2027-01-04"), D("2027-01-21"), D("2027-01-25"), D("2027-02-01"))


def test_apheresis_machine_closed_for_service_fails():
    closure = {"resource": "apheresis_machine", "centre": "liverpool", "first_day": "2027-01-04",
               "last_day": "2027-01-04", "capacity": 0, "reason": "apheresis machine service"}  # fmt: skip
    problem = make_problem(patient(), capacity_changes=(closure,))
    found = check_plan(problem, make_plan(fresh_car_t(problem, "P001", **AXI_CEL)))
    assert [(v.rule, v.day, v.patient) for v in found] == [("CAPACITY", D("2027-01-04"), None)]
    message = found[0].message
    assert "liverpool/apheresis_machine" in message and "1 booked against a capacity of 0" in message
    assert "apheresis machine service" in message and "P001" in message


def test_three_apheresis_sessions_on_one_day_pass():
    problem = make_problem(patient("P001"), patient("P002"), patient("B003", pathway="brexu-cel"))
    plan = make_plan(
        fresh_car_t(problem, "P001", **AXI_CEL), fresh_car_t(problem, "P002", **AXI_CEL), brexu_cel(problem, "B003")
    )
    assert check_plan(problem, plan) == []


def test_four_apheresis_sessions_on_one_day_fail():
    # Two axi-cel and two brexu-cel patients (2 manufacturer slots each) all collected Mon 04 Jan.
    problem = make_problem(
        patient("P001"), patient("P002"), patient("B003", pathway="brexu-cel"), patient("B004", pathway="brexu-cel")
    )
    plan = make_plan(
        fresh_car_t(problem, "P001", **AXI_CEL),
        fresh_car_t(problem, "P002", **AXI_CEL),
        brexu_cel(problem, "B003"),
        brexu_cel(problem, "B004"),
    )
    found = check_plan(problem, plan)
    assert [(v.rule, v.day) for v in found] == [("CAPACITY", D("2027-01-04"))]
    assert "4 booked against a capacity of 3" in found[0].message
    assert all(pid in found[0].message for pid in ("P001", "P002", "B003", "B004"))


def axi_cel_same_week(problem: Problem) -> list[list[Booking]]:
    """axi-cel collections Mon 04 (P001), Tue 05 (P002), Wed 06 Jan 2027 (P003), each with a clean downstream plan.

    P002: manufacture to Mon 01 Feb, release Tue 02 Feb, LD Wed 03 - Fri 05 Feb, infusion Mon 08 Feb.
    P003: manufacture to Tue 02 Feb, release Wed 03 Feb, LD Mon 08 - Wed 10 Feb, infusion Mon 15 Feb.
    """
    hand_worked = {
        "P001": AXI_CEL,
        "P002": car_t_dates("2027-01-05", "2027-02-02", "2027-02-03", "2027-02-08"),
        "P003": car_t_dates("2027-01-06", "2027-02-03", "2027-02-08", "2027-02-15"),
    }
    return [fresh_car_t(problem, p.id, **hand_worked[p.id]) for p in problem.patients]


def test_two_manufacturer_slots_in_one_week_pass():
    problem = make_problem(patient("P001"), patient("P002"))
    assert check_plan(problem, make_plan(*axi_cel_same_week(problem))) == []


def test_three_manufacturer_slots_in_one_week_fail():
    problem = make_problem(patient("P001"), patient("P002"), patient("P003"))
    found = check_plan(problem, make_plan(*axi_cel_same_week(problem)))
    assert [(v.rule, v.day, v.patient) for v in found] == [("CAPACITY", D("2027-01-04"), None)]
    message = found[0].message
    assert "manufacturer_slot:axi-cel" in message and "in the week of Mon 04 Jan 2027" in message
    assert "3 booked against a capacity of 2" in message


# ---------------------------------------------------------------------------
# EARLIEST_START
# ---------------------------------------------------------------------------
def test_start_before_earliest_start_fails():
    problem, bookings = axi_cel_case(earliest_start="2027-01-05")
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"EARLIEST_START"}
    assert {v.step for v in found} == {"apheresis", "manufacture"}
    assert "Tue 05 Jan 2027" in found[0].message


def test_start_before_approval_fails():
    problem, bookings = axi_cel_case(approval="2027-01-05")
    found = check_plan(problem, make_plan(bookings))
    assert codes(found) == {"EARLIEST_START"}
    assert "approval" in found[0].message


def test_frozen_steps_may_start_before_earliest_start():
    frozen = [{"step": "apheresis", "first_day": "2027-01-04"}, {"step": "manufacture", "first_day": "2027-01-04"}]
    problem, bookings = axi_cel_case(earliest_start="2027-01-05", frozen=frozen)
    assert check_plan(problem, make_plan(bookings)) == []


# ---------------------------------------------------------------------------
# WASHOUT
# ---------------------------------------------------------------------------
def test_apheresis_exactly_two_weeks_after_chemotherapy_passes():
    problem, bookings = axi_cel_case(last_doses={"chemotherapy": "2026-12-21"})
    assert check_plan(problem, make_plan(bookings)) == []


def test_apheresis_one_week_after_chemotherapy_fails():
    problem, bookings = axi_cel_case(last_doses={"chemotherapy": "2026-12-28"})
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.step) for v in found] == [("WASHOUT", "apheresis")]
    assert "7 days" in found[0].message and "14 days" in found[0].message
    assert "Mon 11 Jan 2027" in found[0].message


def test_live_vaccine_within_six_weeks_of_conditioning_fails():
    problem, bookings = axi_cel_case(last_doses={"live_vaccine": "2027-01-01"})
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.step) for v in found] == [("WASHOUT", "conditioning")]


# ---------------------------------------------------------------------------
# BLACKOUT
# ---------------------------------------------------------------------------
def test_blackout_while_the_product_is_manufactured_passes():
    away = {"first_day": "2027-01-10", "last_day": "2027-01-25", "reason": "holiday abroad"}
    problem, bookings = axi_cel_case(blackouts=[away])
    assert check_plan(problem, make_plan(bookings)) == []


def test_blackout_during_conditioning_fails():
    away = {"first_day": "2027-02-04", "last_day": "2027-02-04", "reason": "daughter's wedding"}
    problem, bookings = axi_cel_case(blackouts=[away])
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.step, v.day) for v in found] == [("BLACKOUT", "conditioning", D("2027-02-04"))]
    assert "wedding" in found[0].message


# ---------------------------------------------------------------------------
# FROZEN_CHANGED
# ---------------------------------------------------------------------------
def test_frozen_booking_kept_passes():
    problem, bookings = axi_cel_case(frozen=[{"step": "apheresis", "first_day": "2027-01-04"}])
    assert check_plan(problem, make_plan(bookings)) == []


def test_frozen_booking_moved_fails():
    problem, bookings = axi_cel_case(frozen=[{"step": "apheresis", "first_day": "2027-01-05"}])
    found = check_plan(problem, make_plan(bookings))
    assert [(v.rule, v.step, v.day) for v in found] == [("FROZEN_CHANGED", "apheresis", D("2027-01-05"))]
    assert "Mon 04 Jan 2027" in found[0].message


def test_frozen_booking_dropped_fails():
    problem, bookings = axi_cel_case(frozen=[{"step": "release", "first_day": "2027-02-01"}])
    found = check_plan(problem, make_plan(without(bookings, "release")))
    assert codes(found) == {"FROZEN_CHANGED", "STEP_MISSING"}


def test_a_copied_site_with_a_new_closure_counts_it():
    """A site copied with one more capacity change (what a lab manager's closure does to the site in
    force) has that change, whatever the original worked out before being copied."""
    from pathway.cohort import load_problem
    from pathway.site import CapacityChange
    from tests.paths import COHORTS

    site = load_problem(COHORTS / "small.json").site
    machine = next(r for r in site.resources if r.kind == "apheresis_machine")
    day = date(2027, 1, 12)
    assert site.capacity_on(machine, day) == machine.capacity  # worked out once on the original
    closure = CapacityChange(
        resource=machine.kind, centre=machine.centre, first_day=day, last_day=day, capacity=0, reason="service"
    )
    closed = site.model_copy(update={"capacity_changes": (*site.capacity_changes, closure)})
    assert closed.capacity_on(machine, day) == 0
    assert site.capacity_on(machine, day) == machine.capacity
