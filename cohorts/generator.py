"""Seeded cohort generator: synthetic cohorts of any size and mix, and the fixture cohorts.

``generate_cohort`` returns a plain dict in the cohort JSON format (the one the
API imports, see ``fixtures/cohorts/README.md``); it passes
``pathway.cohort.parse_cohort``. The same arguments always give the same dict:
one ``random.Random(seed)`` drives every choice, in a fixed order.

Patients look like a centre's real caseload (all shares are defaults of this
module, not clinical data): urgency mostly routine, bridging chemotherapy and a
few steroid courses before CAR-T collections, some blackouts and target dates,
two-day harvests for some transplant patients. Approvals fall on working days in
the first part of the horizon, leaving time for a late approval to be infused.

The fixture cohorts under ``fixtures/cohorts/`` are built here too (``FIXTURES``),
so that ``python -m pathway.generator --fixtures`` rewrites them byte for byte.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from pathway.catalogue import Catalogue, StepKind, Template, load_catalogue, read_data_file
from pathway.cohort import SITES_DIR, Cohort, DateRange, FrozenBooking, Horizon, Patient, parse_cohort
from pathway.dates import parse_iso_date
from pathway.errors import InputError, validation_error
from pathway.site import CapacityChange, Site

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "cohorts"

# ---------------------------------------------------------------------------
# Mixes: template id -> weight (relative; normalised by the generator).

# A regional centre over 6 months (shared/domain.md "Scale"): ~20 commercial
# CAR-T over the 9 commercial products, ~10 in-house CAR-T, ~50 autologous and
# ~20 allogeneic transplants per ~100 patients.
REGIONAL_MIX: dict[str, float] = {
    "axi-cel": 4,
    "brexu-cel": 1,
    "tisa-cel-dlbcl": 2,
    "tisa-cel-all": 1,
    "tisa-cel-fl": 1,
    "liso-cel": 3,
    "ide-cel": 2,
    "cilta-cel": 4,
    "obe-cel": 2,
    "in-house-car-t": 10,
    "asct-beam": 20,
    "asct-mel200": 30,
    "allo-sct-fresh": 8,
    "allo-sct-cryo": 12,
}

# All CAR-T centres of England over a year: 65 % CAR-T (55 commercial, 10
# in-house), 35 % transplants. The commercial split follows the indications
# (LBCL largest, myeloma rising); national.yaml sizes its slots on this mix.
NATIONAL_MIX: dict[str, float] = {
    "axi-cel": 14,
    "brexu-cel": 3,
    "tisa-cel-dlbcl": 5,
    "tisa-cel-all": 3,
    "tisa-cel-fl": 2,
    "liso-cel": 8,
    "ide-cel": 6,
    "cilta-cel": 10,
    "obe-cel": 4,
    "in-house-car-t": 10,
    "asct-beam": 10,
    "asct-mel200": 15,
    "allo-sct-fresh": 4,
    "allo-sct-cryo": 6,
}

# ---------------------------------------------------------------------------
# Shares of patients with each attribute (defaults, not clinical data).

URGENCY_WEIGHTS = (("routine", 0.70), ("soon", 0.20), ("urgent", 0.10))
CAR_T_FAMILIES = frozenset({"commercial_car_t", "in_house_car_t"})
BRIDGING_CHEMOTHERAPY_SHARE = 0.40  # CAR-T: chemotherapy 0-20 days before approval
BRIDGING_CHEMOTHERAPY_DAYS = (0, 20)
STEROIDS_SHARE = 0.08  # CAR-T: systemic steroids 0-4 days before approval
STEROIDS_DAYS = (0, 4)
CHECKPOINT_INHIBITOR_SHARE = 0.03  # CAR-T: checkpoint inhibitor 14-90 days before approval
CHECKPOINT_INHIBITOR_DAYS = (14, 90)
PRIOR_TRANSPLANT_SHARE = 0.15  # CAR-T: autologous transplant 90-1200 days before approval
PRIOR_TRANSPLANT_DAYS = (90, 1200)
BLACKOUT_SHARE = 0.10  # one blackout of 3-10 days during the pathway
BLACKOUT_DAYS = (3, 10)
BLACKOUT_REASONS = (
    "family wedding",
    "hospital appointment elsewhere",
    "holiday booked before referral",
    "carer unavailable",
    "dental treatment",
    "funeral",
)
TARGET_SHARE = 0.20  # a target infusion date the patient or team hopes for
TARGET_SLACK_DAYS = (0, 28)  # after the pathway's lead time from approval
EARLIEST_START_SHARE = 0.10  # work-up not finished: nothing before approval + 3-21 days
EARLIEST_START_DAYS = (3, 21)
LONG_COLLECTION_SHARE = {"autologous_sct": 0.30, "commercial_car_t": 0.05, "in_house_car_t": 0.05}
APPROVAL_TAIL_DAYS = 90  # default: no approvals in the last 90 days of the horizon


# ---------------------------------------------------------------------------
# Inputs


@lru_cache(maxsize=1)
def _catalogue() -> Catalogue:
    return load_catalogue()


@lru_cache(maxsize=16)
def load_site(name: str) -> Site:
    """The site file ``fixtures/catalogue/sites/<name>.yaml``."""
    path = SITES_DIR / f"{name}.yaml"
    if not name.replace("-", "").replace("_", "").isalnum() or not path.exists():
        known = sorted(p.stem for p in SITES_DIR.glob("*.yaml"))
        raise InputError("generate_cohort", "site", f"unknown site {name!r} (known: {', '.join(known)})")
    try:
        return Site.model_validate(read_data_file(path))
    except ValidationError as exc:
        raise validation_error(str(path), exc) from None


def id_prefix(name: str) -> str:
    """'regional' -> 'R', 'cannot_fit' -> 'CF': the initials of the cohort name."""
    parts = [p for p in "".join(c if c.isalnum() else " " for c in name).split() if p]
    return "".join(p[0] for p in parts)[:3].upper() or "P"


def default_approval_window(horizon_days: int) -> int:
    """Approvals in the first ``horizon_days - 90`` days (half the horizon if that is short)."""
    if horizon_days >= 2 * APPROVAL_TAIL_DAYS:
        return horizon_days - APPROVAL_TAIL_DAYS
    return max(1, horizon_days // 2)


def quotas(mix: Mapping[str, float], patients: int) -> list[tuple[str, int]]:
    """Patients per template, proportional to the weights (largest remainder; ties by id)."""
    total = sum(mix.values())
    exact = {t: w * patients / total for t, w in mix.items()}
    counts = {t: math.floor(x) for t, x in exact.items()}
    left = patients - sum(counts.values())
    for t in sorted(exact, key=lambda t: (-(exact[t] - counts[t]), t))[:left]:
        counts[t] += 1
    return [(t, counts[t]) for t in sorted(counts) if counts[t]]


def _check_mix(mix: Mapping[str, float], catalogue: Catalogue) -> None:
    known = {t.id for t in catalogue.templates}
    if not mix:
        raise InputError("generate_cohort", "mix", "is empty")
    for template_id, weight in mix.items():
        if template_id not in known:
            raise InputError(
                "generate_cohort", "mix", f"unknown template {template_id!r} (known: {', '.join(sorted(known))})"
            )
        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise InputError("generate_cohort", "mix", f"weight of {template_id!r} must be a number >= 0, got {weight!r}")
    if sum(mix.values()) <= 0:
        raise InputError("generate_cohort", "mix", "all weights are 0")


def _eligible_centres(template: Template, site: Site) -> list[str]:
    """Centres that have (or share) every resource the template uses."""
    uses = {u.resource for s in template.steps for u in s.uses}
    return [c for c in site.centres if all(site.find_resource(kind, c) is not None for kind in uses)]


def lead_days(template: Template) -> int:
    """Rough days from approval to infusion with no waiting: the steps before the first infusion, end to end."""
    total = 0
    for step in template.steps:
        if step.kind == StepKind.infusion:
            break
        total += step.duration_days
    return total


def _working_days(site: Site, first: date, days: int) -> list[date]:
    out = [first + timedelta(days=i) for i in range(days)]
    working = [d for d in out if d.weekday() < 5 and not site.bank_holiday(d)]
    return working or out


# ---------------------------------------------------------------------------
# The generator


def generate_cohort(
    *,
    name: str,
    seed: int,
    patients: int,
    horizon_start: date,
    horizon_days: int,
    site: str = "default",
    mix: Mapping[str, float] | None = None,
    description: str = "",
    approval_window_days: int | None = None,
) -> dict:
    """A cohort dict in the cohort JSON format; the same arguments give the same dict.

    Raises ``InputError`` (a ``ValueError``) naming the argument on bad input.
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError("generate_cohort", "name", "must be a non-empty string")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError("generate_cohort", "seed", f"must be an integer, got {seed!r}")
    if not isinstance(patients, int) or isinstance(patients, bool) or not 1 <= patients <= 99_999:
        raise InputError("generate_cohort", "patients", f"must be an integer in 1..99999, got {patients!r}")
    if not isinstance(horizon_start, date):
        raise InputError("generate_cohort", "horizon_start", f"must be a date, got {horizon_start!r}")
    if not isinstance(horizon_days, int) or isinstance(horizon_days, bool) or not 7 <= horizon_days <= 800:
        raise InputError("generate_cohort", "horizon_days", f"must be an integer in 7..800, got {horizon_days!r}")
    if approval_window_days is None:
        approval_window_days = default_approval_window(horizon_days)
    if (
        not isinstance(approval_window_days, int)
        or isinstance(approval_window_days, bool)
        or not 1 <= approval_window_days <= horizon_days
    ):
        raise InputError(
            "generate_cohort",
            "approval_window_days",
            f"must be an integer in 1..{horizon_days} (the horizon), got {approval_window_days!r}",
        )
    catalogue = _catalogue()
    mix = dict(REGIONAL_MIX if mix is None else mix)
    _check_mix(mix, catalogue)
    the_site = load_site(site)
    eligible = {t: _eligible_centres(catalogue.template(t), the_site) for t in sorted(mix) if mix[t] > 0}
    for template_id, centres in eligible.items():
        if not centres:
            raise InputError("generate_cohort", "mix", f"no centre of site {site!r} can run {template_id!r}")

    rng = random.Random(seed)
    horizon_end = horizon_start + timedelta(days=horizon_days - 1)

    # 1. Pathways in exact proportion to the mix, in random order.
    pathways = [t for t, n in quotas(mix, patients) for _ in range(n)]
    rng.shuffle(pathways)

    # 2. Centres dealt round-robin in a random order, so each gets a fair share.
    centre_order = list(the_site.centres)
    rng.shuffle(centre_order)
    centres = []
    for i, template_id in enumerate(pathways):
        options = eligible[template_id]
        centre = centre_order[i % len(centre_order)]
        centres.append(centre if centre in options else options[i % len(options)])

    # 3. Approvals on working days of the approval window; ids follow approval order.
    approval_days = _working_days(the_site, horizon_start, approval_window_days)
    approvals = [rng.choice(approval_days) for _ in pathways]
    order = sorted(range(patients), key=lambda i: (approvals[i], i))

    prefix = id_prefix(name)
    width = max(4, len(str(patients)))
    records = []
    for number, i in enumerate(order, start=1):
        template = catalogue.template(pathways[i])
        records.append(
            _patient(
                rng,
                patient_id=f"{prefix}-{number:0{width}d}",
                centre=centres[i],
                template=template,
                washout_agents={w.agent for w in catalogue.washouts(template)},
                approval=approvals[i],
                horizon_end=horizon_end,
            )
        )

    if not description:
        description = (
            f"{patients} synthetic patients, {horizon_days} days from {horizon_start.isoformat()} on site {site!r}; "
            f"made by pathway.generator (seed {seed})."
        )
    return canonical(
        {
            "name": name,
            "description": description,
            "site": site,
            "horizon": {"start": horizon_start.isoformat(), "days": horizon_days},
            "patients": records,
        }
    )


def _chance(rng: random.Random, share: float) -> bool:
    return rng.random() < share


def _patient(
    rng: random.Random,
    *,
    patient_id: str,
    centre: str,
    template: Template,
    washout_agents: set[str],
    approval: date,
    horizon_end: date,
) -> dict:
    """One patient's record. Every draw happens whatever the outcome, so the stream stays aligned."""
    urgency = rng.choices([u for u, _ in URGENCY_WEIGHTS], weights=[w for _, w in URGENCY_WEIGHTS])[0]
    record: dict = {
        "id": patient_id,
        "centre": centre,
        "pathway": template.id,
        "approval_date": approval.isoformat(),
        "urgency": urgency,
    }

    car_t = template.family in CAR_T_FAMILIES
    last_doses: dict[str, str] = {}
    for agent, share, (low, high) in (
        ("chemotherapy", BRIDGING_CHEMOTHERAPY_SHARE, BRIDGING_CHEMOTHERAPY_DAYS),
        ("steroids", STEROIDS_SHARE, STEROIDS_DAYS),
        ("checkpoint_inhibitor", CHECKPOINT_INHIBITOR_SHARE, CHECKPOINT_INHIBITOR_DAYS),
        ("prior_transplant", PRIOR_TRANSPLANT_SHARE, PRIOR_TRANSPLANT_DAYS),
    ):
        hit = _chance(rng, share)
        days_before = rng.randint(low, high)
        if car_t and hit and agent in washout_agents:
            last_doses[agent] = (approval - timedelta(days=days_before)).isoformat()
    if last_doses:
        record["last_doses"] = dict(sorted(last_doses.items()))

    lead = lead_days(template)

    has_earliest = _chance(rng, EARLIEST_START_SHARE)
    earliest = min(approval + timedelta(days=rng.randint(*EARLIEST_START_DAYS)), horizon_end)
    if has_earliest and earliest > approval:
        record["earliest_start"] = earliest.isoformat()

    has_target = _chance(rng, TARGET_SHARE)
    target = approval + timedelta(days=lead + rng.randint(*TARGET_SLACK_DAYS))
    if has_target:
        record["target_infusion_date"] = target.isoformat()

    has_blackout = _chance(rng, BLACKOUT_SHARE)
    blackout_first = approval + timedelta(days=rng.randint(0, lead + 14))
    blackout_days = rng.randint(*BLACKOUT_DAYS)
    reason = rng.choice(BLACKOUT_REASONS)
    if has_blackout:
        record["blackouts"] = [
            {
                "first_day": blackout_first.isoformat(),
                "last_day": (blackout_first + timedelta(days=blackout_days - 1)).isoformat(),
                "reason": reason,
            }
        ]

    long_collection = _chance(rng, LONG_COLLECTION_SHARE.get(template.family, 0.0))
    collection = next(
        (s for s in template.steps if s.kind == StepKind.apheresis and (s.max_duration_days or 0) > s.duration_days),
        None,
    )
    if long_collection and collection is not None:
        record["durations"] = {collection.name: collection.duration_days + 1}
    return record


# ---------------------------------------------------------------------------
# Writing


def _in_order(record: Mapping, fields: list[str]) -> dict:
    """Keys in the model's field order, then any others sorted (so even bad input renders stably)."""
    known = [k for k in fields if k in record]
    return {k: record[k] for k in known + sorted(k for k in record if k not in fields)}


def canonical(cohort: Mapping) -> dict:
    """The cohort with keys in the order of the format's fields (``pathway.cohort`` models).

    Objects follow their model's field order (name, description, site, horizon,
    ...; a patient's id first), maps keyed by agent or step are sorted, lists keep
    their order. Readable, and the same cohort always gives the same text.
    """
    out = _in_order(cohort, list(Cohort.model_fields))
    if isinstance(out.get("horizon"), Mapping):
        out["horizon"] = _in_order(out["horizon"], list(Horizon.model_fields))
    if isinstance(out.get("capacity_changes"), list):
        out["capacity_changes"] = [
            _in_order(c, list(CapacityChange.model_fields)) if isinstance(c, Mapping) else c
            for c in out["capacity_changes"]
        ]
    if isinstance(out.get("patients"), list):
        out["patients"] = [_canonical_patient(p) if isinstance(p, Mapping) else p for p in out["patients"]]
    return out


def _canonical_patient(patient: Mapping) -> dict:
    out = _in_order(patient, list(Patient.model_fields))
    for field in ("last_doses", "durations"):
        if isinstance(out.get(field), Mapping):
            out[field] = dict(sorted(out[field].items()))
    if isinstance(out.get("blackouts"), list):
        out["blackouts"] = [_in_order(b, list(DateRange.model_fields)) if isinstance(b, Mapping) else b
                            for b in out["blackouts"]]
    if isinstance(out.get("frozen"), list):
        out["frozen"] = [_in_order(f, list(FrozenBooking.model_fields)) if isinstance(f, Mapping) else f
                         for f in out["frozen"]]
    return out


def render(cohort: Mapping) -> str:
    """The file text of a cohort: JSON, 2-space indent, keys in canonical order, trailing newline."""
    return json.dumps(canonical(cohort), indent=2, ensure_ascii=False) + "\n"


def write_cohort(cohort: Mapping, path: Path | str) -> Path:
    """Validate with ``parse_cohort`` and write; raises InputError if the cohort is not valid."""
    path = Path(path)
    parse_cohort(json.loads(render(cohort)), source=str(path))
    path.write_text(render(cohort), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Fixture cohorts (fixtures/cohorts/*.json). Each is a function of nothing, so
# the files can be rebuilt and compared byte for byte.

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
        mix=NATIONAL_MIX,
        description=(
            "A national year: 1,100 patients over 12 CAR-T centres sharing the commercial manufacturer "
            "slots of the national site; 65 % CAR-T (715), 35 % transplants; approvals in the first "
            "275 days. Made by pathway.generator, seed 2027."
        ),
    )


def _members(
    *, seed: int, patients: int, first_approval: date, approval_days: int, mix: Mapping[str, float], site: str = "default"
) -> list[dict]:
    """Generated patients approved in ``first_approval .. + approval_days - 1`` (ids are renumbered later)."""
    cohort = generate_cohort(
        name="group",
        seed=seed,
        patients=patients,
        horizon_start=first_approval,
        horizon_days=max(7, approval_days + 60),
        site=site,
        mix=mix,
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


CAR_T_MIX = {t: w for t, w in REGIONAL_MIX.items() if not t.startswith(("asct", "allo"))}
COMMERCIAL_MIX = {t: w for t, w in CAR_T_MIX.items() if t != "in-house-car-t"}
FAST_CAR_T_MIX = {"axi-cel": 2, "brexu-cel": 1, "in-house-car-t": 2}  # products back within ~3-4 weeks
ASCT_MIX = {"asct-beam": 2, "asct-mel200": 3}
TRANSPLANT_MIX = {"asct-beam": 2, "asct-mel200": 3, "allo-sct-fresh": 1, "allo-sct-cryo": 1}


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
            _members(seed=1225, patients=7, first_approval=date(2026, 12, 14), approval_days=11, mix=ASCT_MIX),
            _members(seed=1226, patients=5, first_approval=date(2026, 12, 14), approval_days=11, mix=FAST_CAR_T_MIX),
            _members(seed=1227, patients=4, first_approval=date(2026, 12, 14), approval_days=11, mix=COMMERCIAL_MIX),
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
            _members(seed=326, patients=5, first_approval=date(2027, 2, 15), approval_days=12,
                     mix={"axi-cel": 2, "brexu-cel": 1}),
            _members(seed=327, patients=5, first_approval=date(2027, 3, 1), approval_days=12,
                     mix={"in-house-car-t": 1}),
            _members(seed=328, patients=8, first_approval=date(2027, 3, 15), approval_days=11, mix=TRANSPLANT_MIX),
        ],
    )


def closure_fixture() -> dict:
    """A two-week manufacturing closure and a day of reduced apheresis, with patients who need both."""
    in_house = _members(seed=1401, patients=8, first_approval=date(2027, 1, 11), approval_days=26,
                        mix={"in-house-car-t": 1})
    others = _members(seed=1402, patients=8, first_approval=date(2027, 1, 4), approval_days=14,
                      mix={"axi-cel": 1, "tisa-cel-dlbcl": 1, "asct-mel200": 2})
    # Four patients want the apheresis unit on Mon 18 Jan, the day it runs one machine.
    squeezed = _members(seed=1403, patients=4, first_approval=date(2027, 1, 18), approval_days=1,
                        mix={"in-house-car-t": 1, "axi-cel": 1})
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


OVERSUBSCRIBED_MIX = {
    "axi-cel": 6,
    "tisa-cel-dlbcl": 3,
    "tisa-cel-all": 2,
    "tisa-cel-fl": 1,
    "liso-cel": 2,
    "ide-cel": 2,
    "cilta-cel": 3,
    "obe-cel": 1,
    "in-house-car-t": 6,
    "asct-beam": 5,
    "asct-mel200": 6,
    "allo-sct-fresh": 1,
    "allo-sct-cryo": 2,
}


def oversubscribed_fixture() -> dict:
    return generate_cohort(
        name="oversubscribed",
        seed=303,
        patients=40,
        horizon_start=FIXTURE_START,
        horizon_days=182,
        site="default",
        mix=OVERSUBSCRIBED_MIX,
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


CANNOT_FIT_MIX = {
    t: 1
    for t in ("axi-cel", "tisa-cel-dlbcl", "liso-cel", "in-house-car-t", "asct-beam", "asct-mel200", "allo-sct-cryo",
              "allo-sct-fresh")
}


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
        groups=[_members(seed=404, patients=8, first_approval=date(2027, 1, 4), approval_days=26, mix=CANNOT_FIT_MIX)],
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


def fixture_path(name: str, directory: Path = FIXTURES_DIR) -> Path:
    return directory / f"{name}.json"


def write_fixtures(names: list[str] | None = None, directory: Path = FIXTURES_DIR) -> list[Path]:
    """Rebuild the generated fixture files (all of them by default)."""
    return [write_cohort(FIXTURES[n](), fixture_path(n, directory)) for n in (names or list(FIXTURES))]


def stale_fixtures(names: list[str] | None = None, directory: Path = FIXTURES_DIR) -> list[str]:
    """Fixture files that differ from what the generator makes now (or are missing)."""
    stale = []
    for n in names or list(FIXTURES):
        path = fixture_path(n, directory)
        if not path.exists() or path.read_text(encoding="utf-8") != render(FIXTURES[n]()):
            stale.append(n)
    return stale


# ---------------------------------------------------------------------------
# Command line

_ARGUMENT_OF_FIELD = {
    "name": "--name",
    "seed": "--seed",
    "patients": "--patients",
    "horizon_start": "--start",
    "horizon_days": "--days",
    "site": "--site",
    "mix": "--mix",
    "approval_window_days": "--approval-window",
    "description": "--description",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the usage too)
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _iso_date(text: str) -> date:
    try:
        return parse_iso_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_mix(text: str) -> dict[str, float]:
    """'axi-cel=2,asct-beam=3' -> {'axi-cel': 2.0, 'asct-beam': 3.0}."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        template_id, sep, weight = part.strip().partition("=")
        if not sep or not template_id.strip():
            raise argparse.ArgumentTypeError(f"expected template=weight[,template=weight...], got {part.strip()!r}")
        try:
            value = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {template_id.strip()!r} is not a number: {weight!r}") from None
        if template_id.strip() in mix:
            raise argparse.ArgumentTypeError(f"template {template_id.strip()!r} is given twice")
        mix[template_id.strip()] = value
    return mix


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m pathway.generator",
        description="Write a synthetic cohort (JSON), or rebuild the fixture cohorts with --fixtures.",
    )
    parser.add_argument("--name", help="cohort name (patient ids take its initials)")
    parser.add_argument("--seed", type=int, help="random seed: same arguments, same file")
    parser.add_argument("--patients", type=int, help="number of patients")
    parser.add_argument("--start", type=_iso_date, help="first day of the horizon, YYYY-MM-DD")
    parser.add_argument("--days", type=int, help="length of the horizon in days (7-800)")
    parser.add_argument("--site", default="default", help="site file name under fixtures/catalogue/sites")
    parser.add_argument("--mix", type=parse_mix, help="template=weight,... (default: the regional mix)")
    parser.add_argument("--approval-window", type=int, help="approvals fall in the first N days (default: days-90)")
    parser.add_argument("--description", default="", help="free text for the cohort")
    parser.add_argument("--out", help="output file ('-' for standard output)")
    parser.add_argument(
        "--fixtures",
        nargs="*",
        metavar="NAME",
        help=f"rewrite the fixture cohorts under fixtures/cohorts (all, or some of: {', '.join(FIXTURES)})",
    )
    parser.add_argument("--check", action="store_true", help="with --fixtures: write nothing, exit 1 if a file is stale")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    if args.fixtures is not None:
        generation = [a for a in ("name", "seed", "patients", "start", "days", "mix", "approval_window", "out")
                      if getattr(args, a) is not None]
        if generation:
            parser.error(f"argument --fixtures: not allowed with --{generation[0].replace('_', '-')}")
        unknown = [n for n in args.fixtures if n not in FIXTURES]
        if unknown:
            parser.error(f"argument --fixtures: unknown fixture {unknown[0]!r} (known: {', '.join(FIXTURES)})")
        names = args.fixtures or None
        if args.check:
            stale = stale_fixtures(names)
            for n in stale:
                print(f"{fixture_path(n)} is stale: run python -m pathway.generator --fixtures {n}", file=sys.stderr)
            return 1 if stale else 0
        for path in write_fixtures(names):
            print(path)
        return 0

    if args.check:
        parser.error("argument --check: only with --fixtures")
    for flag in ("name", "seed", "patients", "start", "days", "out"):
        if getattr(args, flag) is None:
            parser.error(f"argument --{flag}: is required")
    try:
        cohort = generate_cohort(
            name=args.name,
            seed=args.seed,
            patients=args.patients,
            horizon_start=args.start,
            horizon_days=args.days,
            site=args.site,
            mix=args.mix,
            description=args.description,
            approval_window_days=args.approval_window,
        )
        parse_cohort(json.loads(render(cohort)), source=args.name)
    except InputError as exc:
        flag = _ARGUMENT_OF_FIELD.get(exc.field.split(".")[0].split("[")[0])
        parser.error(f"argument {flag}: {exc.problem}" if flag else exc.one_line())
    if args.out == "-":
        sys.stdout.write(render(cohort))
        return 0
    try:
        Path(args.out).write_text(render(cohort), encoding="utf-8")
    except OSError as exc:
        parser.error(f"argument --out: cannot write {args.out!r}: {exc.strerror}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
