"""propose(): the earliest schedule for one patient inside the current plan.

Every option is judged by the independent checker as a whole plan: the other
patients' current bookings, with the option's moves applied, plus the option's
bookings for the patient.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from pathway.cohort import load_problem, parse_cohort
from pathway.plan import Plan
from pathway.rules import check_plan
from solver.baseline import Schedule, greedy
from solver.instance import build_instance
from solver.model import CohortModelBuilder, MoveCost
from solver.objective import cost_terms
from solver.params import cp_model, new_solver
from solver.propose import Option, Proposal, propose
from solver.solve import SolveOptions, solve
from tests.paths import COHORTS

D = date.fromisoformat


@pytest.fixture(scope="module")
def small():
    problem = load_problem(COHORTS / "small.json")
    return problem, solve(problem, "cp-sat", SolveOptions(time_limit=3, reproducible=True))


@pytest.fixture(scope="module")
def small_greedy():
    """The small cohort booked first come, first served: S-AXI-1 and S-INH-3 wait for others."""
    problem = load_problem(COHORTS / "small.json")
    return problem, solve(problem, "greedy")


@pytest.fixture(scope="module")
def regional_greedy():
    problem = load_problem(COHORTS / "regional.json")
    return problem, solve(problem, "greedy")


def _without(plan: Plan, patient_id: str) -> Plan:
    """The current plan as the API would see it when ``patient_id`` is (re)proposed."""
    return plan.model_copy(
        update={
            "bookings": tuple(b for b in plan.bookings if b.patient != patient_id),
            "unschedulable": tuple(u for u in plan.unschedulable if u.patient != patient_id),
            "outcomes": (),
        }
    )


def _applied(current: Plan, option: Option) -> Plan:
    """The current bookings with the option's moves applied, plus the option's bookings."""
    moves = {(m.patient, m.step): m for m in option.moves}
    assert len(moves) == len(option.moves), "a step moved twice"
    bookings = []
    for b in current.bookings:
        move = moves.pop((b.patient, b.step), None)
        if move is not None:
            assert (move.from_first_day, move.from_last_day) == (b.first_day, b.last_day)
            assert move.to_last_day - move.to_first_day == b.last_day - b.first_day
            b = b.model_copy(update={"first_day": move.to_first_day, "last_day": move.to_last_day})
        bookings.append(b)
    assert not moves, f"moves of bookings the current plan does not have: {sorted(moves)}"
    return current.model_copy(update={"bookings": tuple(bookings) + option.bookings})


def _assert_option(problem, current: Plan, patient_id: str, option: Option) -> None:
    patient = problem.patient(patient_id)
    steps = [s.name for s in problem.template(patient).steps]
    assert [b.step for b in option.bookings] == steps and {b.patient for b in option.bookings} == {patient_id}
    first_infusion = next(s.name for s in problem.template(patient).steps if s.kind.value == "infusion")
    assert option.infusion == next(b.first_day for b in option.bookings if b.step == first_infusion)
    assert option.disruption == sum(abs((m.to_first_day - m.from_first_day).days) for m in option.moves)
    assert all(m.to_first_day != m.from_first_day for m in option.moves)
    for f in patient.frozen:
        assert next(b.first_day for b in option.bookings if b.step == f.step) == f.first_day
    violations = check_plan(problem, _applied(current, option))
    assert violations == [], [v.message for v in violations]


def _assert_alternatives(problem, current: Plan, proposal: Proposal, movable) -> None:
    frozen = {(p.id, f.step) for p in problem.patients for f in p.frozen}
    for option in proposal.alternatives:
        if proposal.fast is not None:
            assert option.infusion < proposal.fast.infusion
        assert {m.patient for m in option.moves} <= set(movable) - {proposal.patient}
        assert not {(m.patient, m.step) for m in option.moves} & frozen
        _assert_option(problem, current, proposal.patient, option)
    disruptions = [o.disruption for o in proposal.alternatives]
    assert disruptions == sorted(disruptions)


def _day_costs(problem, plan: Plan, patient_id: str) -> int:
    """The patient's cost in ``plan``, by the one cost definition."""
    instance = build_instance(problem)
    spec = next(s for s in instance.patients if s.id == patient_id)
    booked = plan.bookings_of(patient_id)
    starts = [instance.day_of(booked[step.name].first_day) for step in spec.steps]
    return cost_terms(spec, problem.site.objective).evaluate(starts)


# -- the fast path ---------------------------------------------------------------------
def test_fast_path_fits_around_everyone_else_and_moves_nobody(small):
    problem, plan = small
    free = {o.patient: o.capacity_free_infusion for o in plan.outcomes}
    assert len(free) == 8
    for patient_id in sorted(free):
        current = _without(plan, patient_id)
        proposal = propose(problem, patient_id, current)
        assert proposal.patient == patient_id and proposal.reason == "" and proposal.alternatives == ()
        fast = proposal.fast
        assert fast is not None and fast.moves == () and fast.disruption == 0
        assert fast.infusion >= free[patient_id]
        # Its old schedule still fits in the capacity left, so the cheapest one costs no more.
        assert fast.cost <= _day_costs(problem, plan, patient_id)
        assert fast.cost == _day_costs(problem, _applied(current, fast), patient_id)
        _assert_option(problem, current, patient_id, fast)
        assert 0 < proposal.wall_time_s < 5


def test_patient_who_cannot_fit_even_alone_is_told_the_blocking_rule():
    problem = load_problem(COHORTS / "cannot_fit.json")
    plan = solve(problem, "greedy")
    everyone = [p.id for p in problem.patients]
    washout = propose(problem, "X-NOFIT-1", _without(plan, "X-NOFIT-1"), movable=everyone)
    blackout = propose(problem, "X-NOFIT-2", _without(plan, "X-NOFIT-2"), movable=everyone)
    for proposal in (washout, blackout):
        assert proposal.fast is None and proposal.alternatives == ()
    assert washout.reason.startswith("WASHOUT: ") and "checkpoint inhibitor" in washout.reason
    assert blackout.reason.startswith("BLACKOUT: ") and "25 Jan .. 31 Jul 2027" in blackout.reason


def test_patient_who_does_not_fit_around_the_others_is_told_which_resource_is_full():
    """Six in-house CAR-T patients approved on one day, two manufacturing devices,
    13-day runs and a six-week horizon: a second pair of runs would end too late,
    so only two reach infusion, whoever moves."""
    problem = parse_cohort(
        {
            "name": "full-devices",
            "horizon": {"start": "2027-01-04", "days": 42},
            "patients": [
                {"id": f"D-{i}", "centre": "liverpool", "pathway": "in-house-car-t", "approval_date": "2027-01-04"}
                for i in range(1, 7)
            ],
        }
    )
    plan = solve(problem, "greedy")
    left_out = sorted(u.patient for u in plan.unschedulable)
    assert len(left_out) == 4
    proposal = propose(problem, left_out[0], _without(plan, left_out[0]), movable=[p.id for p in problem.patients])
    assert proposal.fast is None and proposal.alternatives == ()
    assert proposal.reason.startswith("CAPACITY: ")
    assert "liverpool/manufacturing_device full" in proposal.reason and "Mon 01 Feb 2027" in proposal.reason


def test_unknown_patient_is_a_key_error(small):
    problem, plan = small
    with pytest.raises(KeyError):
        propose(problem, "NOBODY", plan)


# -- alternatives ------------------------------------------------------------------------
def _urgent(problem, patient_id: str):
    """The same problem with ``patient_id`` made urgent (so it may move anyone)."""
    patients = tuple(p.model_copy(update={"urgency": "urgent"}) if p.id == patient_id else p for p in problem.patients)
    return dataclasses.replace(problem, cohort=problem.cohort.model_copy(update={"patients": patients}))


def test_alternatives_are_earlier_move_others_and_are_clean(small_greedy):
    """Greedy booked S-INH-3 after the urgent and soon patients; once S-INH-3 is
    urgent too, moving one of them lets it go earlier."""
    problem, plan = small_greedy
    problem = _urgent(problem, "S-INH-3")
    current = _without(plan, "S-INH-3")
    everyone = [p.id for p in problem.patients]
    proposal = propose(problem, "S-INH-3", current, movable=everyone, time_limit=5)
    assert proposal.fast is not None and proposal.fast.infusion == D("2027-02-16")
    _assert_option(problem, current, "S-INH-3", proposal.fast)
    assert any(o.moves for o in proposal.alternatives)
    _assert_alternatives(problem, current, proposal, everyone)
    # The earliest answer reaches its capacity-free date, Mon 01 Feb.
    assert min(o.infusion for o in proposal.alternatives) == D("2027-02-01")


def test_a_routine_patient_never_bumps_a_more_urgent_one_nor_delays_anyone_much(small_greedy):
    problem, plan = small_greedy  # S-INH-3 is routine; S-INH-1 urgent, S-INH-2 soon
    current = _without(plan, "S-INH-3")
    everyone = [p.id for p in problem.patients]
    proposal = propose(problem, "S-INH-3", current, movable=everyone, time_limit=5, max_slip_days=7)
    urgency = {p.id: p.urgency for p in problem.patients}
    moved = {m.patient for o in proposal.alternatives for m in o.moves}
    assert all(urgency[pid] == "routine" for pid in moved)
    before = {(b.patient, b.step): b.first_day for b in current.bookings}
    for option in proposal.alternatives:
        for m in option.moves:
            if m.step == "infusion":
                assert (m.to_first_day - before[m.patient, m.step]).days <= 7
    # made urgent, it may move S-INH-1 (as urgent) and S-INH-2 (less urgent)
    bumped = propose(_urgent(problem, "S-INH-3"), "S-INH-3", current, movable=everyone, time_limit=5)
    assert {m.patient for o in bumped.alternatives for m in o.moves} & {"S-INH-1", "S-INH-2"}


def test_only_movable_patients_move(small_greedy):
    problem, plan = small_greedy
    problem = _urgent(problem, "S-INH-3")
    current = _without(plan, "S-INH-3")
    everyone = [p.id for p in problem.patients]
    first = propose(problem, "S-INH-3", current, movable=everyone, time_limit=5)
    moved = {m.patient for o in first.alternatives for m in o.moves}
    assert moved
    allowed = [p for p in everyone if p not in moved]
    second = propose(problem, "S-INH-3", current, movable=allowed, time_limit=5)
    _assert_alternatives(problem, current, second, allowed)
    assert not {m.patient for o in second.alternatives for m in o.moves} & moved
    # Nobody movable: the fast path only.
    assert propose(problem, "S-INH-3", current, movable=()).alternatives == ()


def test_frozen_steps_of_others_never_move(small_greedy):
    """Every other patient's first step is frozen on its booked day. Both axi-cel
    slots of the first week are then fixed, so S-AXI-1 can no longer reach
    Mon 08 Feb; later steps of the others may still move (S-AXI-1 made urgent so
    that it may move them)."""
    problem, plan = small_greedy
    problem = _urgent(problem, "S-AXI-1")
    raw = problem.cohort.model_dump(mode="json")
    for patient in raw["patients"]:
        booked = list(plan.bookings_of(patient["id"]).values())
        if patient["id"] != "S-AXI-1" and booked:
            patient["frozen"] = [{"step": booked[0].step, "first_day": booked[0].first_day.isoformat()}]
    frozen_problem = parse_cohort(raw)
    current = _without(plan, "S-AXI-1")
    everyone = [p.id for p in problem.patients]

    unfrozen = propose(problem, "S-AXI-1", current, movable=everyone, time_limit=5)
    assert min(o.infusion for o in unfrozen.alternatives) == D("2027-02-08")

    proposal = propose(frozen_problem, "S-AXI-1", current, movable=everyone, time_limit=5)
    assert proposal.fast is not None and any(o.moves for o in proposal.alternatives)
    _assert_alternatives(frozen_problem, current, proposal, everyone)
    assert min(o.infusion for o in proposal.alternatives) > D("2027-02-08")


def test_patient_keeps_its_own_frozen_step(small_greedy):
    problem, plan = small_greedy
    problem = _urgent(problem, "S-AXI-1")  # so that its alternatives may move the others
    current = _without(plan, "S-AXI-1")
    everyone = [p.id for p in problem.patients]

    def frozen_on(day: str):
        raw = problem.cohort.model_dump(mode="json")
        for patient in raw["patients"]:
            if patient["id"] == "S-AXI-1":
                patient["frozen"] = [{"step": "apheresis", "first_day": day}]
        return parse_cohort(raw)

    # On its own day: alternatives move others, never the patient's apheresis.
    kept = frozen_on("2027-01-12")
    proposal = propose(kept, "S-AXI-1", current, movable=everyone, time_limit=5)
    assert any(o.moves for o in proposal.alternatives)
    for option in (proposal.fast, *proposal.alternatives):
        assert option.bookings[0].step == "apheresis" and option.bookings[0].first_day == D("2027-01-12")
    _assert_option(kept, current, "S-AXI-1", proposal.fast)
    _assert_alternatives(kept, current, proposal, everyone)

    # A week later than the fast path would choose: the whole pathway follows it.
    later = frozen_on("2027-01-19")
    proposal = propose(later, "S-AXI-1", current, movable=everyone)
    assert proposal.fast.bookings[0].first_day == D("2027-01-19")
    assert proposal.fast.infusion == D("2027-02-22")
    _assert_option(later, current, "S-AXI-1", proposal.fast)


def test_regional_cohort_new_patient_gets_an_earlier_alternative(regional_greedy):
    """100 patients, beds the busiest resource: R-0032 waits a week in the greedy plan."""
    problem, plan = regional_greedy
    current = _without(plan, "R-0032")
    everyone = [p.id for p in problem.patients]
    proposal = propose(problem, "R-0032", current, movable=everyone, time_limit=5)
    free = next(o.capacity_free_infusion for o in plan.outcomes if o.patient == "R-0032")
    assert proposal.fast is not None and proposal.fast.infusion > free
    _assert_option(problem, current, "R-0032", proposal.fast)
    assert any(o.moves for o in proposal.alternatives)
    _assert_alternatives(problem, current, proposal, everyone)


# -- the move penalty in the cohort model --------------------------------------------------
def test_move_penalty_measures_shifts_and_keeps_the_current_plan_when_heavy(small):
    problem, _ = small
    instance = build_instance(problem)
    schedules = greedy(instance, excluded={"S-NOFIT-1"})
    patients = [p for p in instance.patients if schedules[p.id] is not None]
    current = {p.id: schedules[p.id].starts for p in patients}
    hint = {p.id: Schedule(schedules[p.id].starts, 0) for p in patients}

    def model(reference, **move_costs):
        return (
            CohortModelBuilder(instance, patients)
            .require()
            .add_capacity()
            .add_cost()
            .add_move_penalty(reference, **move_costs)
            .add_hint(hint)
            .build()
        )

    def solved(**kwargs):
        cohort = model(current, **kwargs)
        solver = new_solver(10, reproducible=True)
        assert solver.solve(cohort.model) == cp_model.OPTIMAL
        return cohort, solver

    # Without weight the shifts are only measured: |start - current start| per not-frozen step,
    # here against a reference a week off for one patient (a reference need not be a valid plan).
    cohort = model(current | {"S-ASCT-1": [d + 7 for d in current["S-ASCT-1"]]})
    solver = new_solver(10, reproducible=True)
    assert solver.solve(cohort.model) == cp_model.OPTIMAL
    assert set(cohort.shifts) == set(current)
    total = 0
    for pv in cohort.patients:
        reference = current[pv.spec.id] if pv.spec.id != "S-ASCT-1" else [d + 7 for d in current["S-ASCT-1"]]
        for index, shift in cohort.shifts[pv.spec.id]:
            assert solver.value(shift) == abs(solver.value(pv.starts[index]) - reference[index])
            total += solver.value(shift)
    assert solver.value(cohort.disruption) == total >= 7 * len(cohort.shifts["S-ASCT-1"]) > 0

    # Each day moved costs more than any day gained: nothing moves.
    for kwargs in ({"move_costs": MoveCost(per_day=1000)}, {"move_costs": MoveCost(per_move=100_000)}):
        cohort, solver = solved(**kwargs)
        assert solver.value(cohort.disruption) == 0
        for pv in cohort.patients:
            assert [v if isinstance(v, int) else solver.value(v) for v in pv.starts] == current[pv.spec.id]


# -- the alternatives on the column generation pipeline --------------------------------------
def _scenario(name: str, small_greedy, regional_greedy):
    """(problem, current plan, patient, movable) of a fixture cohort where alternatives move others."""
    if name == "regional":
        problem, plan = regional_greedy
        patient_id = "R-0032"
    else:
        problem, plan = small_greedy
        patient_id = {"small-inhouse": "S-INH-3", "small-axicel": "S-AXI-1"}[name]
        problem = _urgent(problem, patient_id)
    return problem, _without(plan, patient_id), patient_id, [p.id for p in problem.patients]


def _dominated(option: Option, by: tuple[Option, ...]) -> bool:
    """Some option of ``by`` infuses no later with no more disruption."""
    return any(o.infusion <= option.infusion and o.disruption <= option.disruption for o in by)


@pytest.mark.parametrize(
    "name, slip, movable_from",
    [
        ("small-inhouse", 14, None),
        ("small-axicel", 14, None),
        ("regional", 14, None),
        ("small-inhouse", 14, D("2027-01-11")),  # its cheapest moves start on 07 Jan
        ("regional", 7, D("2027-04-21")),  # its cheapest moves start on 19 and 21 Apr
    ],
)
def test_pipeline_alternatives_equal_or_beat_cp_sat_and_keep_every_guarantee(
    name, slip, movable_from, small_greedy, regional_greedy
):
    problem, current, patient_id, everyone = _scenario(name, small_greedy, regional_greedy)
    found = {
        method: propose(
            problem,
            patient_id,
            current,
            movable=everyone,
            time_limit=5,
            max_slip_days=slip,
            movable_from=movable_from,
            method=method,
            reproducible=True,
        )
        for method in ("colgen", "cp-sat")
    }
    pipeline, cp_sat = found["colgen"], found["cp-sat"]
    assert pipeline.fast == cp_sat.fast
    assert pipeline.alternatives and any(o.moves for o in pipeline.alternatives)
    for option in cp_sat.alternatives:
        assert _dominated(option, pipeline.alternatives), (option, pipeline.alternatives)
    assert min(o.infusion for o in pipeline.alternatives) <= min(o.infusion for o in cp_sat.alternatives)
    _assert_alternatives(problem, current, pipeline, everyone)  # every plan through the checker
    # Each strictly earlier than the one before (in order of infusion), none as late as the fast path.
    infusions = sorted(o.infusion for o in pipeline.alternatives)
    assert len(set(infusions)) == len(infusions)
    before = {(b.patient, b.step): b.first_day for b in current.bookings}
    mine = problem.site.objective.urgency_weights[problem.patient(patient_id).urgency]
    for option in pipeline.alternatives:
        for m in option.moves:
            assert problem.site.objective.urgency_weights[problem.patient(m.patient).urgency] <= mine
            assert movable_from is None or m.to_first_day >= movable_from
            if m.step == "infusion":
                assert (m.to_first_day - before[m.patient, m.step]).days <= slip


def test_pipeline_alternatives_are_the_same_twice_in_reproducible_mode(regional_greedy):
    problem, plan = regional_greedy
    current = _without(plan, "R-0032")
    everyone = [p.id for p in problem.patients]
    first, second = (
        propose(problem, "R-0032", current, movable=everyone, time_limit=5, reproducible=True) for _ in range(2)
    )
    assert first.alternatives and first.alternatives == second.alternatives
    assert first.fast == second.fast
