"""The fixture cohorts (``cohorts/data/*.json`` but ``small.json``): each is a function of
nothing, so the files can be rebuilt and compared byte for byte (``python -m cohorts
--fixtures [--check]``; ``tests/test_generator.py`` fails on a stale file).

Most are generator groups with fixed seeds and a named mix of ``cohorts/mixes.yaml``;
the edge cohorts add a few hand-written patients. Their descriptions still say
"pathway.generator", the generator's home when the files were first written: they are
kept byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from cohorts import COHORT_FILES
from cohorts.generator import canonical, generate_cohort, id_prefix, product_mix, render, write_cohort

FIXTURE_START = date(2027, 1, 4)  # a Monday


def regional_fixture() -> dict:
    return generate_cohort(
        name="regional",
        seed=20270104,
        patients=100,
        horizon_start=FIXTURE_START,
        horizon_days=245,
        approval_window_days=182,
        site="default",
        description=(
            "A regional centre's six months of referrals: 100 patients on the default site (Liverpool), "
            "regional mix (~20 commercial CAR-T, 10 in-house CAR-T, 50 autologous and 20 allogeneic "
            "transplants), approvals over 182 days and a 245-day horizon so the last referrals can "
            "reach infusion. Made by pathway.generator, seed 20270104."
        ),
    )


def national_fixture() -> dict:
    return generate_cohort(
        name="national",
        seed=2027,
        patients=1100,
        horizon_start=FIXTURE_START,
        horizon_days=365,
        site="national",
        mix=product_mix("national"),
        description=(
            "A national year: 1,100 patients over 12 CAR-T centres sharing the commercial manufacturer "
            "slots of the national site; 65 % CAR-T (715), 35 % transplants; approvals in the first "
            "275 days. Made by pathway.generator, seed 2027."
        ),
    )


def _members(
    *, seed: int, patients: int, first_approval: date, approval_days: int, mix: str, site: str = "default"
) -> list[dict]:
    """Generated patients of the named ``mix``, approved in ``first_approval .. + approval_days - 1``
    (ids are renumbered later)."""
    cohort = generate_cohort(
        name="group",
        seed=seed,
        patients=patients,
        horizon_start=first_approval,
        horizon_days=max(7, approval_days + 60),
        site=site,
        mix=product_mix(mix),
        approval_window_days=approval_days,
    )
    return list(cohort["patients"])


def _assemble(
    *,
    name: str,
    description: str,
    horizon_start: date,
    horizon_days: int,
    groups: list[list[dict]],
    named: tuple[dict, ...] | list[dict] = (),
    capacity_changes: tuple[dict, ...] | list[dict] = (),
    site: str = "default",
) -> dict:
    """Merge generated groups, renumber them by approval date, and add hand-written (named) patients."""
    members = [p for group in groups for p in group]
    order = sorted(range(len(members)), key=lambda i: (members[i]["approval_date"], i))
    prefix = id_prefix(name)
    patients = []
    for number, i in enumerate(order, start=1):
        patients.append({**members[i], "id": f"{prefix}-{number:04d}"})
    patients.extend(named)
    cohort = {
        "name": name,
        "description": description,
        "site": site,
        "horizon": {"start": horizon_start.isoformat(), "days": horizon_days},
        "patients": patients,
    }
    if capacity_changes:
        cohort["capacity_changes"] = list(capacity_changes)
    return canonical(cohort)


def christmas_fixture() -> dict:
    """Approvals 14-24 Dec 2026: collections, conditioning and infusions over Christmas and New Year."""
    return _assemble(
        name="christmas",
        description=(
            "Christmas and New Year 2026-27 on the default site: 16 patients approved 14-24 Dec 2026, so "
            "harvests, CAR-T collections, transplant conditioning and in-house CAR-T lymphodepletion fall "
            "over the bank holidays (Fri 25 Dec, Mon 28 Dec, Fri 1 Jan) and the no-infusion eves (Thu 24 "
            "Dec, Thu 31 Dec); plus two CAR-T patients in flight (apheresis already done on Mon 7 Dec) "
            "whose products come back just before Christmas. Generator groups (seeds 1225, 1226, 1227) "
            "plus two hand-written patients."
        ),
        horizon_start=date(2026, 12, 7),
        horizon_days=120,
        groups=[
            _members(seed=1225, patients=7, first_approval=date(2026, 12, 14), approval_days=11, mix="autologous-sct"),
            _members(seed=1226, patients=5, first_approval=date(2026, 12, 14), approval_days=11, mix="fast-car-t"),
            _members(
                seed=1227, patients=4, first_approval=date(2026, 12, 14), approval_days=11, mix="commercial-car-t"
            ),
        ],
        named=[
            {
                "id": "C-INFLIGHT-1",
                "centre": "liverpool",
                "pathway": "brexu-cel",
                "approval_date": "2026-11-23",
                "urgency": "soon",
                "target_infusion_date": "2026-12-24",
                "frozen": [{"step": "apheresis", "first_day": "2026-12-07"}],
            },
            {
                "id": "C-INFLIGHT-2",
                "centre": "liverpool",
                "pathway": "in-house-car-t",
                "approval_date": "2026-11-30",
                "urgency": "routine",
                "frozen": [
                    {"step": "apheresis", "first_day": "2026-12-07"},
                    {"step": "manufacture", "first_day": "2026-12-08"},
                ],
            },
        ],
    )


def easter_fixture() -> dict:
    """Steps due around Easter 2027 (Good Friday 26 Mar, Easter Monday 29 Mar)."""
    return _assemble(
        name="easter",
        description=(
            "Easter 2027 on the default site (Good Friday 26 Mar, Easter Monday 29 Mar; no infusion on "
            "Thu 25 Mar): transplant patients approved 15-25 Mar (harvests and conditioning over the "
            "weekend), in-house CAR-T approved 1-12 Mar (release and lymphodepletion around Easter) and "
            "axi-cel/brexu-cel approved 15-26 Feb (product back in the week before Easter). Generator "
            "groups (seeds 326, 327, 328)."
        ),
        horizon_start=date(2027, 2, 15),
        horizon_days=120,
        groups=[
            _members(seed=326, patients=5, first_approval=date(2027, 2, 15), approval_days=12, mix="axi-brexu-cel"),
            _members(seed=327, patients=5, first_approval=date(2027, 3, 1), approval_days=12, mix="in-house-car-t"),
            _members(seed=328, patients=8, first_approval=date(2027, 3, 15), approval_days=11, mix="transplant"),
        ],
    )


def closure_fixture() -> dict:
    """A two-week manufacturing closure and a day of reduced apheresis, with patients who need both."""
    in_house = _members(seed=1401, patients=8, first_approval=date(2027, 1, 11), approval_days=26, mix="in-house-car-t")
    others = _members(seed=1402, patients=8, first_approval=date(2027, 1, 4), approval_days=14, mix="closure-others")
    # Four patients want the apheresis unit on Mon 18 Jan, the day it runs one machine.
    squeezed = _members(
        seed=1403, patients=4, first_approval=date(2027, 1, 18), approval_days=1, mix="closure-apheresis-day"
    )
    for patient in squeezed:
        for field in ("earliest_start", "blackouts", "last_doses"):
            patient.pop(field, None)
    return _assemble(
        name="closure",
        description=(
            "Lab closures on the default site: the manufacturing devices closed 1-14 Feb 2027 (cleanroom "
            "air-handling failure and requalification) on top of the site's 1-3 Mar requalification, and "
            "one apheresis machine only on Mon 18 Jan 2027. 10 in-house CAR-T patients approved 14 Jan - "
            "2 Feb queue for 2 devices whose 13-day runs cannot cross either closure; 4 patients approved "
            "on 18 Jan (2 in-house, 2 axi-cel) compete for that day's single apheresis session. Generator "
            "groups (seeds 1401-1403)."
        ),
        horizon_start=FIXTURE_START,
        horizon_days=120,
        groups=[in_house, others, squeezed],
        capacity_changes=[
            {
                "resource": "manufacturing_device",
                "centre": "liverpool",
                "first_day": "2027-02-01",
                "last_day": "2027-02-14",
                "capacity": 0,
                "reason": "cleanroom air-handling failure: grade B suite closed for repair and requalification",
            },
            {
                "resource": "apheresis_machine",
                "centre": "liverpool",
                "first_day": "2027-01-18",
                "last_day": "2027-01-18",
                "capacity": 1,
                "reason": "two apheresis nurses off sick: one machine staffed",
            },
        ],
    )


def oversubscribed_fixture() -> dict:
    return generate_cohort(
        name="oversubscribed",
        seed=303,
        patients=40,
        horizon_start=FIXTURE_START,
        horizon_days=182,
        site="default",
        mix=product_mix("oversubscribed"),
        approval_window_days=28,
        description=(
            "A surge on the default site: 40 patients approved in the 4 weeks from 4 Jan 2027, about 2.5 "
            "times a usual month (~17), 26 of them CAR-T. The high-risk window (4 patients x 15 days) needs "
            "390 patient-days, so it is full for about 100 days; 6 axi-cel and 6 tisa-cel patients compete "
            "for 2 manufacturer slots a week each, 6 in-house runs queue for 2 devices and 40 collections "
            "share 3 apheresis machines in 20 working days. The order of treatment matters: first come, "
            "first served makes urgent patients wait. Made by pathway.generator, seed 303."
        ),
    )


def cannot_fit_fixture() -> dict:
    """Normal patients plus two who cannot be infused inside the horizon."""
    horizon_start, horizon_days = FIXTURE_START, 120
    horizon_end = horizon_start + timedelta(days=horizon_days - 1)  # Mon 3 May 2027
    return _assemble(
        name="cannot_fit",
        description=(
            "Eight ordinary patients approved in January 2027 on the default site, and two who cannot be "
            "infused before the horizon ends on 3 May 2027: X-NOFIT-1 had a checkpoint inhibitor on 31 Mar, "
            "so the 42-day washout keeps apheresis off until 12 May; X-NOFIT-2 is away from 25 Jan to "
            "31 Jul, which covers every day an infusion could be given. Generator group (seed 404) plus "
            "two hand-written patients."
        ),
        horizon_start=horizon_start,
        horizon_days=horizon_days,
        groups=[_members(seed=404, patients=8, first_approval=date(2027, 1, 4), approval_days=26, mix="cannot-fit")],
        named=[
            {
                "id": "X-NOFIT-1",
                "centre": "liverpool",
                "pathway": "axi-cel",
                "approval_date": "2027-04-01",
                "urgency": "soon",
                "last_doses": {"checkpoint_inhibitor": "2027-03-31"},
            },
            {
                "id": "X-NOFIT-2",
                "centre": "liverpool",
                "pathway": "in-house-car-t",
                "approval_date": "2027-01-11",
                "urgency": "routine",
                "blackouts": [
                    {
                        "first_day": "2027-01-25",
                        "last_day": (horizon_end + timedelta(days=89)).isoformat(),
                        "reason": "abroad caring for a relative; no return date before August",
                    }
                ],
            },
        ],
    )


FIXTURES: dict[str, Callable[[], dict]] = {
    "regional": regional_fixture,
    "national": national_fixture,
    "christmas": christmas_fixture,
    "easter": easter_fixture,
    "closure": closure_fixture,
    "oversubscribed": oversubscribed_fixture,
    "cannot_fit": cannot_fit_fixture,
}


def fixture_path(name: str, directory: Path = COHORT_FILES) -> Path:
    return directory / f"{name}.json"


def write_fixtures(names: list[str] | None = None, directory: Path = COHORT_FILES) -> list[Path]:
    """Rebuild the generated fixture files (all of them by default)."""
    return [write_cohort(FIXTURES[n](), fixture_path(n, directory)) for n in (names or list(FIXTURES))]


def stale_fixtures(names: list[str] | None = None, directory: Path = COHORT_FILES) -> list[str]:
    """Fixture files that differ from what the generator makes now (or are missing)."""
    stale = []
    for n in names or list(FIXTURES):
        path = fixture_path(n, directory)
        if not path.exists() or path.read_text(encoding="utf-8") != render(FIXTURES[n]()):
            stale.append(n)
    return stale
