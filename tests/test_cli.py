"""The v2v command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.paths import CATALOGUE, COHORTS

SMALL = COHORTS / "small.json"


def v2v(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "small-plan.json"
    result = v2v("solve", SMALL, "--time-limit", "20", "--reproducible", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "rule checker: 0 violation(s)" in result.stdout
    assert "UNSCHEDULABLE S-NOFIT-1 [WASHOUT]" in result.stdout
    return out


def test_demo_runs_from_any_directory_on_the_packaged_data_and_starts_with_a_worklist(tmp_path):
    """The catalogue, the site and the regional cohort are package data, not files of the working directory.
    The demo's first three weeks are recorded as they happened (api.diary), so the first worklist a new
    user opens, on the day after, has something on it: a step left unrecorded, a product late, a
    product awaiting release whose conditioning is at risk, and what is due."""
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "demo", "--no-serve", "--time-limit", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "100 patients" in result.stdout
    assert (tmp_path / "vein2vein-demo.db").exists()
    assert "21 days played" in result.stdout and "refused" not in result.stdout
    today = date.fromisoformat(re.search(r"V2V_TODAY=(\S+)", result.stdout).group(1))
    assert today == date(2027, 1, 25)  # three weeks after the regional cohort's first day
    unrecorded = re.search(r"disruption: (\S+): (.+) left unrecorded", result.stdout)
    late = re.search(r"disruption: (\S+): product (\d+) days late", result.stdout)
    assert unrecorded and late, result.stdout

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from api.setup import new_token

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'vein2vein-demo.db'}", _env_file=None, today=today, nightly_enabled=False
    )
    headers = {"Authorization": f"Bearer {new_token(settings, 'first-user', 'coordinator')}"}
    with TestClient(create_app(settings)) as client:
        worklist = client.get("/worklist", headers=headers).json()
    assert [(i["patient"], i["step"].replace("_", " ")) for i in worklist["overdue"]] == [unrecorded.groups()]
    assert worklist["due"]
    awaited = {p["patient"]: p for p in worklist["products_awaited"]}
    assert awaited[late.group(1)]["state"]["expected_on"] > today.isoformat()
    awaiting_release = [
        p for p in awaited.values() if p["next_step"] and p["next_step"]["first_day"] <= today.isoformat()
    ]
    at_risk = {i["patient"] for i in worklist["at_risk"]}
    assert any(p["patient"] in at_risk for p in awaiting_release), (awaiting_release, at_risk)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--quick", "--api"], "--api: not allowed with argument --quick"),
        (["--api", "mysql"], "--api: invalid choice"),
        (["--load", "--api"], "--api: not allowed with argument --load"),
        (["--load", "--clients", "0"], "--clients: a whole number from 1 to 200"),
    ],
)
def test_the_benchmark_command_refuses_bad_arguments_in_one_line(args, problem):
    result = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and problem in result.stderr, result.stderr


def test_check_accepts_the_solved_plan(small_plan):
    result = v2v("check", SMALL, small_plan)
    assert result.returncode == 0
    assert result.stdout.strip().endswith("0 violation(s)")


def test_check_lists_violations_and_exits_1(small_plan, tmp_path):
    plan = json.loads(small_plan.read_text())
    for booking in plan["bookings"]:
        if booking["patient"] == "S-AXI-2" and booking["step"] == "conditioning":
            booking["first_day"], booking["last_day"] = "2027-01-26", "2027-01-28"  # before the product is back
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(plan))
    result = v2v("check", SMALL, tampered)
    assert result.returncode == 1
    assert "RELEASE_BEFORE_CONDITIONING\tS-AXI-2\tconditioning\t2027-01-26" in result.stdout


def test_explain_gives_every_date_and_its_reason(small_plan):
    result = v2v("explain", SMALL, small_plan, "--patient", "S-AXI-1")
    assert result.returncode == 0
    out = result.stdout
    assert "- apheresis: Tue 12 Jan 2027" in out
    assert "manufacturer_slot:axi-cel full in the week of Mon 04 Jan 2027 (2 of 2: S-AXI-2, S-AXI-3)" in out
    assert "Mon 15 Feb 2027: liverpool/high_risk_window full" in out
    assert out.count("\n- ") == 7  # all seven steps of axi-cel


def test_schema_describes_the_fixture_cohorts():
    result = v2v("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    for path in sorted(COHORTS.glob("*.json")):
        jsonschema.validate(json.loads(path.read_text()), schema)
    bad = json.loads(SMALL.read_text())
    bad["patients"][0]["approval_date"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def _cohort_with(tmp_path: Path, change) -> Path:
    cohort = json.loads(SMALL.read_text())
    change(cohort)
    path = tmp_path / "cohort.json"
    path.write_text(json.dumps(cohort))
    return path


def _catalogue_with(tmp_path: Path, change) -> Path:
    catalogue = yaml.safe_load(CATALOGUE.read_text())
    change(catalogue)
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(catalogue))
    return path


def _set(path: list, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


BAD_COHORTS = {
    "unknown pathway": (
        _set(["patients", 0, "pathway"], "yescarta-x"),
        "patients[0].pathway: unknown pathway 'yescarta-x'",
    ),
    "malformed date": (_set(["patients", 1, "approval_date"], "04/01/2027"), "patients[1].approval_date: "),
    "impossible date": (_set(["patients", 1, "approval_date"], "2027-02-30"), "is not a real calendar date"),
    "number as date": (_set(["horizon", "start"], 20270104), "horizon.start: "),
    "negative duration override": (
        _set(["patients", 6, "durations"], {"harvest": -1}),
        "patients[6].durations.harvest",
    ),
    "unknown resource": (
        _set(
            ["capacity_changes"],
            [{"resource": "laser", "first_day": "2027-01-04", "last_day": "2027-01-05", "capacity": 0, "reason": "x"}],
        ),
        "capacity_changes[0].resource: no resource 'laser'",
    ),
    "unknown centre": (_set(["patients", 0, "centre"], "atlantis"), "patients[0].centre: unknown centre 'atlantis'"),
    "NHS number in a blackout's reason": (
        _set(
            ["patients", 0, "blackouts"],
            [{"first_day": "2027-02-01", "last_day": "2027-02-02", "reason": "943 476 5919"}],
        ),
        "patients[0].blackouts[0].reason: reads as an NHS number",
    ),
    "duplicate id": (_set(["patients", 1, "id"], "S-AXI-1"), "patients[1].id: patient id 'S-AXI-1' appears twice"),
    "unknown washout agent": (
        _set(["patients", 0, "last_doses"], {"aspirin": "2027-01-01"}),
        "patients[0].last_doses.aspirin",
    ),
    "identifiable id": (_set(["patients", 0, "id"], "Jane Smith"), "patients[0].id"),
    "NHS number as id": (_set(["patients", 0, "id"], "9434765919"), "patients[0].id: an id made of digits"),
    "closure of a shared resource at one centre": (
        _set(
            ["capacity_changes"],
            [
                {
                    "resource": "manufacturer_slot:axi-cel",
                    "centre": "liverpool",
                    "first_day": "2027-01-04",
                    "last_day": "2027-01-10",
                    "capacity": 0,
                    "reason": "x",
                }
            ],
        ),
        "capacity_changes[0].resource: 'manufacturer_slot:axi-cel' is shared by every centre",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_COHORTS))
def test_bad_cohort_gives_one_line_and_exit_2(tmp_path, case):
    change, expected = BAD_COHORTS[case]
    path = _cohort_with(tmp_path, change)
    result = v2v("solve", path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr


BAD_CATALOGUES = {
    "negative duration": (
        _set(["templates", 0, "steps", 0, "duration_days"], -2),
        "templates[0].steps[0].duration_days",
    ),
    "lag that can never be met": (
        _set(["templates", 0, "steps", 4, "lags"], [{"after": "conditioning", "min": 5, "max": 2}]),
        "max 2 is below min 5, so it can never be met",
    ),
    "lag after a later step": (
        _set(["templates", 0, "steps", 1, "lags"], [{"after": "infusion", "min": 0}]),
        "lag after 'infusion', which is not an earlier step",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CATALOGUES))
def test_bad_catalogue_gives_one_line_and_exit_2(tmp_path, case):
    change, expected = BAD_CATALOGUES[case]
    path = _catalogue_with(tmp_path, change)
    result = v2v("solve", SMALL, "--catalogue", path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], result.stderr


def test_unreadable_files_and_unknown_patient(tmp_path, small_plan):
    missing = v2v("check", tmp_path / "nope.json", small_plan)
    assert missing.returncode == 2 and "cannot read file" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "patients": [')
    result = v2v("solve", broken)
    assert result.returncode == 2 and "not valid YAML/JSON" in result.stderr
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"name": "caf\u00e9"}'.encode("latin-1"))
    result = v2v("solve", latin1)
    assert result.returncode == 2 and "not a UTF-8 text file" in result.stderr and "Traceback" not in result.stderr
    unknown = v2v("explain", SMALL, small_plan, "--patient", "S-NOBODY")
    assert unknown.returncode == 2 and "no patient 'S-NOBODY'" in unknown.stderr
    bad_limit = v2v("solve", SMALL, "--time-limit", "-3")
    assert bad_limit.returncode == 2 and len(bad_limit.stderr.strip().splitlines()) == 1
