"""The seeded cohort generator and the fixture cohorts it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import pytest

from cohorts.fixtures import FIXTURES
from cohorts.generator import generate_cohort, load_site, mixes, product_mix, quotas, render
from pathway.catalogue import load_catalogue
from pathway.cohort import load_problem, parse_cohort
from pathway.errors import InputError
from tests.paths import COHORTS, ROOT

START = date(2027, 1, 4)
CATALOGUE = load_catalogue()
FAMILY = {t.id: t.family for t in CATALOGUE.templates}
CAR_T = {"commercial_car_t", "in_house_car_t"}


def cohort(**overrides) -> dict:
    args = dict(name="test", seed=1, patients=100, horizon_start=START, horizon_days=182)
    args.update(overrides)
    return generate_cohort(**args)


@pytest.fixture(scope="module")
def large() -> dict:
    """2,000 patients on the default site: enough for the shares to show."""
    return cohort(name="large", seed=11, patients=2000, horizon_days=365)


# -- determinism -------------------------------------------------------------


def test_same_arguments_give_the_same_cohort():
    assert cohort(seed=5) == cohort(seed=5)
    assert render(cohort(seed=5)) == render(cohort(seed=5))


def test_a_different_seed_gives_a_different_cohort():
    assert cohort(seed=5)["patients"] != cohort(seed=6)["patients"]


def test_generation_does_not_depend_on_the_global_random_state():
    import random

    random.seed(1)
    first = cohort(seed=9)
    random.seed(2)
    assert cohort(seed=9) == first


# -- size, mix and attributes -------------------------------------------------


@pytest.mark.parametrize("patients", [1, 7, 100, 333])
def test_requested_size(patients):
    made = cohort(patients=patients)
    assert len(made["patients"]) == patients
    assert len({p["id"] for p in made["patients"]}) == patients


def test_mix_is_honoured_exactly_by_quota():
    made = cohort(patients=400)
    counts = Counter(p["pathway"] for p in made["patients"])
    assert dict(counts) == {t: n for t, n in quotas(product_mix("regional"), 400)}
    by_family = Counter(FAMILY[p["pathway"]] for p in made["patients"])
    assert by_family == {"commercial_car_t": 80, "in_house_car_t": 40, "autologous_sct": 200, "allogeneic_sct": 80}


def test_a_custom_mix():
    made = cohort(patients=100, mix={"axi-cel": 1, "asct-beam": 3, "obe-cel": 0})
    assert Counter(p["pathway"] for p in made["patients"]) == {"axi-cel": 25, "asct-beam": 75}


@pytest.mark.parametrize("name", sorted(mixes()))
def test_every_named_mix_generates_a_valid_cohort(name):
    made = cohort(patients=20, mix=product_mix(name))
    parse_cohort(made)
    assert {p["pathway"] for p in made["patients"]} <= set(product_mix(name))


def test_an_unknown_mix_name_is_refused_with_the_known_ones():
    with pytest.raises(InputError) as error:
        product_mix("summer")
    assert error.value.field == "mix" and "regional" in error.value.problem


def test_quotas_add_up_to_the_size():
    for n in (1, 2, 13, 99, 1001):
        assert sum(count for _, count in quotas(product_mix("national"), n)) == n


def test_ids_are_pseudonymous_and_follow_approval_order():
    made = cohort(name="regional", patients=30)
    ids = [p["id"] for p in made["patients"]]
    assert ids == [f"R-{i:04d}" for i in range(1, 31)]
    approvals = [p["approval_date"] for p in made["patients"]]
    assert approvals == sorted(approvals)


def test_approvals_on_working_days_leaving_time_at_the_end(large):
    site = load_site("default")
    last_allowed = START + timedelta(days=365 - 90 - 1)
    for p in large["patients"]:
        approved = date.fromisoformat(p["approval_date"])
        assert START <= approved <= last_allowed
        assert approved.weekday() < 5 and not site.bank_holiday(approved)
    months = Counter(p["approval_date"][:7] for p in large["patients"])
    assert len(months) >= 9  # spread, not bunched


def test_approval_window_parameter():
    made = cohort(patients=50, approval_window_days=14)
    assert max(p["approval_date"] for p in made["patients"]) < (START + timedelta(days=14)).isoformat()


def test_attribute_shares(large):
    patients = large["patients"]
    n = len(patients)
    urgency = Counter(p["urgency"] for p in patients)
    assert abs(urgency["routine"] / n - 0.70) < 0.04
    assert abs(urgency["soon"] / n - 0.20) < 0.03
    assert abs(urgency["urgent"] / n - 0.10) < 0.03

    car_t = [p for p in patients if FAMILY[p["pathway"]] in CAR_T]
    bridged = [p for p in car_t if "chemotherapy" in p.get("last_doses", {})]
    assert abs(len(bridged) / len(car_t) - 0.40) < 0.06
    steroids = [p for p in car_t if "steroids" in p.get("last_doses", {})]
    assert 0 < len(steroids) / len(car_t) < 0.15
    for p in bridged:
        gap = (date.fromisoformat(p["approval_date"]) - date.fromisoformat(p["last_doses"]["chemotherapy"])).days
        assert 0 <= gap <= 20
    assert not any("last_doses" in p for p in patients if FAMILY[p["pathway"]] not in CAR_T)

    assert abs(sum("blackouts" in p for p in patients) / n - 0.10) < 0.03
    for p in patients:
        for b in p.get("blackouts", []):
            assert 3 <= (date.fromisoformat(b["last_day"]) - date.fromisoformat(b["first_day"])).days + 1 <= 10
            assert b["reason"]
    assert abs(sum("target_infusion_date" in p for p in patients) / n - 0.20) < 0.04

    asct = [p for p in patients if FAMILY[p["pathway"]] == "autologous_sct"]
    assert abs(sum(p.get("durations") == {"harvest": 2} for p in asct) / len(asct) - 0.30) < 0.05
    long_apheresis = sum(p.get("durations") == {"apheresis": 2} for p in car_t)
    assert 0 < long_apheresis / len(car_t) < 0.10


def test_no_step_before_approval(large):
    for p in large["patients"]:
        if "earliest_start" in p:
            assert p["earliest_start"] > p["approval_date"]
        if "target_infusion_date" in p:
            assert p["target_infusion_date"] > p["approval_date"]


def test_patients_spread_over_the_centres():
    made = cohort(patients=240, site="national", horizon_days=365, mix=product_mix("national"))
    per_centre = Counter(p["centre"] for p in made["patients"])
    assert set(per_centre) == set(load_site("national").centres)
    assert max(per_centre.values()) - min(per_centre.values()) <= 1


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"patients": 1},
        {"patients": 12, "horizon_days": 7},
        {"patients": 60, "horizon_days": 30},
        {"patients": 300, "site": "national", "horizon_days": 365},
        {"patients": 50, "mix": {t.id: 1 for t in CATALOGUE.templates}},
        {"patients": 20, "mix": {"in-house-car-t": 1}, "approval_window_days": 1},
        {"patients": 40, "horizon_start": date(2026, 12, 21), "horizon_days": 60, "seed": -3},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items() if k != "mix") or "defaults",
)
def test_generated_cohorts_parse(overrides):
    made = cohort(**overrides)
    problem = parse_cohort(made, source="generated")
    assert len(problem.patients) == len(made["patients"])
    assert parse_cohort(json.loads(render(made)), source="rendered").cohort == problem.cohort


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"patients": 0}, "patients"),
        ({"horizon_days": 3}, "horizon_days"),
        ({"approval_window_days": 500}, "approval_window_days"),
        ({"site": "atlantis"}, "site"),
        ({"mix": {"unknown-car-t": 1}}, "mix"),
        ({"mix": {"axi-cel": -1}}, "mix"),
        ({"mix": {"axi-cel": 0}}, "mix"),
        ({"mix": {}}, "mix"),
        ({"name": " "}, "name"),
    ],
)
def test_bad_arguments_name_the_argument(overrides, field):
    with pytest.raises(InputError) as error:
        cohort(**overrides)
    assert error.value.field == field


# -- the fixture files --------------------------------------------------------


COMMITTED = sorted(COHORTS.glob("*.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_committed_cohort_loads(path):
    problem = load_problem(path)
    assert problem.patients


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_generated_fixture_is_up_to_date(name):
    path = COHORTS / f"{name}.json"
    assert path.exists(), f"{path} is missing: run python -m cohorts --fixtures {name}"
    assert path.read_text(encoding="utf-8") == render(FIXTURES[name]()), (
        f"{path.name} differs from the generator's output: run python -m cohorts --fixtures {name}"
    )


def test_national_fixture_is_a_national_year():
    problem = load_problem(COHORTS / "national.json")
    assert len(problem.patients) >= 1000
    assert len(problem.site.centres) >= 8
    assert len({p.centre for p in problem.patients}) >= 8
    car_t = sum(FAMILY[p.pathway] in CAR_T for p in problem.patients)
    assert car_t / len(problem.patients) >= 0.60
    slots = [r for r in problem.site.resources if r.kind.startswith("manufacturer_slot:")]
    assert slots and all(r.centre is None and r.period == "week" for r in slots)
    assert problem.horizon.days == 365


def test_national_site_gives_every_centre_the_default_resources():
    national, default = load_site("national"), load_site("default")
    assert national.calendars == default.calendars
    default_capacity = {r.kind: r.capacity for r in default.resources if r.centre}
    for centre in national.centres:
        own = {r.kind: r.capacity for r in national.resources if r.centre == centre}
        assert own == default_capacity


def test_regional_fixture():
    problem = load_problem(COHORTS / "regional.json")
    assert len(problem.patients) == 100
    assert problem.horizon.start == START and problem.horizon.days == 245
    approvals = sorted(p.approval_date for p in problem.patients)
    assert (approvals[-1] - START).days < 182  # six months of referrals
    assert problem.site.name == "default"


@pytest.mark.parametrize("name", ["christmas", "easter", "closure", "oversubscribed", "cannot_fit"])
def test_edge_cohorts_are_small(name):
    assert 8 <= len(load_problem(COHORTS / f"{name}.json").patients) <= 40


def test_christmas_cohort_is_approved_before_christmas():
    problem = load_problem(COHORTS / "christmas.json")
    assert problem.horizon.start == date(2026, 12, 7)
    approved = [p.approval_date for p in problem.patients if not p.frozen]
    assert len(approved) >= 8
    assert all(date(2026, 12, 14) <= d <= date(2026, 12, 24) for d in approved)


def test_easter_cohort_spans_easter():
    problem = load_problem(COHORTS / "easter.json")
    assert problem.horizon.start < date(2027, 3, 26) and problem.horizon.end > date(2027, 3, 29)
    assert problem.site.bank_holiday(date(2027, 3, 26)) and problem.site.bank_holiday(date(2027, 3, 29))


def test_closure_cohort_closes_the_devices_and_affects_in_house_patients():
    problem = load_problem(COHORTS / "closure.json")
    changes = problem.cohort.capacity_changes
    device = [c for c in changes if c.resource == "manufacturing_device" and c.capacity == 0]
    assert device and (device[0].last_day - device[0].first_day).days + 1 == 14
    apheresis = [c for c in changes if c.resource == "apheresis_machine" and c.capacity == 1]
    assert apheresis and apheresis[0].first_day == apheresis[0].last_day
    assert all(c.reason for c in changes)
    in_house = [p for p in problem.patients if p.pathway == "in-house-car-t"]
    # a 13-day run started on approval would still be running when the devices close
    assert sum(p.approval_date + timedelta(days=12) >= device[0].first_day for p in in_house) >= 5


def test_oversubscribed_cohort_is_approved_within_four_weeks():
    problem = load_problem(COHORTS / "oversubscribed.json")
    approvals = [p.approval_date for p in problem.patients]
    assert len(approvals) == 40
    assert (max(approvals) - min(approvals)).days < 28


def test_cannot_fit_patients_cannot_be_infused_inside_the_horizon():
    problem = load_problem(COHORTS / "cannot_fit.json")
    end = problem.horizon.end
    nofit = {p.id: p for p in problem.patients if p.id.startswith("X-NOFIT-")}
    assert set(nofit) == {"X-NOFIT-1", "X-NOFIT-2"}
    assert len(problem.patients) - len(nofit) >= 8

    washout = problem.washout_day(nofit["X-NOFIT-1"], kind=problem.template(nofit["X-NOFIT-1"]).steps[0].kind)
    assert washout is not None and washout[0] > end and washout[1].agent == "checkpoint_inhibitor"

    patient = nofit["X-NOFIT-2"]
    # no CAR-T product can be back within two weeks of approval; from then on every day is blacked out
    first_possible = patient.approval_date + timedelta(days=14)
    days = [first_possible + timedelta(days=i) for i in range((end - first_possible).days + 1)]
    assert all(any(b.covers(d) for b in patient.blackouts) for d in days)


# -- the command line ----------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cohorts", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


GOOD = ["--name", "cli", "--seed", "3", "--patients", "25", "--start", "2027-01-04", "--days", "182"]


def test_cli_writes_the_generated_cohort(tmp_path):
    out = tmp_path / "cli.json"
    result = run(*GOOD, "--mix", "axi-cel=1,asct-beam=3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    expected = generate_cohort(
        name="cli", seed=3, patients=25, horizon_start=START, horizon_days=182, mix={"axi-cel": 1, "asct-beam": 3}
    )
    assert out.read_text(encoding="utf-8") == render(expected)
    load_problem(out)


def test_cli_takes_a_named_mix():
    result = run(*GOOD, "--mix", "national", "--site", "national", "--out", "-")
    assert result.returncode == 0, result.stderr
    expected = generate_cohort(
        name="cli",
        seed=3,
        patients=25,
        horizon_start=START,
        horizon_days=182,
        site="national",
        mix=product_mix("national"),
    )
    assert result.stdout == render(expected)


def test_cli_fixture_check_passes():
    result = run("--fixtures", "--check")
    assert result.returncode == 0, result.stderr


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (_replace(GOOD, "--seed", "x") + ["--out", "-"], "--seed"),
        (_replace(GOOD, "--patients", "0") + ["--out", "-"], "--patients"),
        (_replace(GOOD, "--start", "2027-02-30") + ["--out", "-"], "--start"),
        (_replace(GOOD, "--start", "04/01/2027") + ["--out", "-"], "--start"),
        (_replace(GOOD, "--days", "3") + ["--out", "-"], "--days"),
        (GOOD + ["--mix", "axi-cel", "--out", "-"], "--mix"),
        (GOOD + ["--mix", "axi-cel=lots", "--out", "-"], "--mix"),
        (GOOD + ["--mix", "gene-therapy=1", "--out", "-"], "--mix"),
        (GOOD + ["--site", "atlantis", "--out", "-"], "--site"),
        (GOOD + ["--approval-window", "400", "--out", "-"], "--approval-window"),
        (GOOD, "--out"),
        (GOOD[2:] + ["--out", "-"], "--name"),
        (["--fixtures", "summer"], "--fixtures"),
        (["--fixtures", "--seed", "1"], "--fixtures"),
        (GOOD + ["--out", "/nonexistent-dir/x.json"], "--out"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_cli_bad_input_exits_2_with_one_line(args, argument):
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert argument in lines[0]
    assert "Traceback" not in result.stderr
