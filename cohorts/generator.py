"""Seeded cohort generator: synthetic cohorts of any size and product mix.

``generate_cohort`` returns a plain dict in the cohort JSON format (the one the
API imports, see ``cohorts/README.md``); it passes
``pathway.cohort.parse_cohort``. The same arguments always give the same dict:
one ``random.Random(seed)`` drives every choice, in a fixed order.

Patients look like a centre's real caseload (all shares are defaults of this
module, not clinical data): urgency mostly routine, bridging chemotherapy and a
few steroid courses before CAR-T collections, some blackouts and target dates,
two-day harvests for some transplant patients. Approvals fall on working days in
the first part of the horizon, leaving time for a late approval to be infused.
The product mixes (template id -> weight) are data, in ``cohorts/mixes.yaml``.

The fixture cohorts are built from it in ``cohorts.fixtures``; the command line
is ``python -m cohorts``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from pathway.catalogue import Catalogue, StepKind, Template, load_catalogue, read_data_file
from pathway.cohort import SITES_DIR, Cohort, DateRange, FrozenBooking, Horizon, Patient, parse_cohort
from pathway.errors import InputError, validation_error
from pathway.site import CapacityChange, Site

# An installed package is a directory, so this is a pathlib.Path.
MIXES_FILE: Path = resources.files("cohorts") / "mixes.yaml"
DEFAULT_MIX = "regional"

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


_MIXES = TypeAdapter(dict[str, dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]]])


@lru_cache(maxsize=1)
def mixes() -> dict[str, dict[str, float]]:
    """The named product mixes of ``cohorts/mixes.yaml``: name -> {template id: weight}."""
    try:
        return _MIXES.validate_python(read_data_file(MIXES_FILE))
    except ValidationError as exc:
        raise validation_error(str(MIXES_FILE), exc) from None


def product_mix(name: str) -> dict[str, float]:
    """One named mix (a copy); InputError naming the known mixes if there is no such mix."""
    known = mixes()
    if name not in known:
        raise InputError("generate_cohort", "mix", f"unknown mix {name!r} (known: {', '.join(known)})")
    return dict(known[name])


@lru_cache(maxsize=16)
def load_site(name: str) -> Site:
    """The site file ``pathway/data/sites/<name>.yaml``."""
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
            raise InputError(
                "generate_cohort", "mix", f"weight of {template_id!r} must be a number >= 0, got {weight!r}"
            )
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
    mix = product_mix(DEFAULT_MIX) if mix is None else dict(mix)
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
            f"made by cohorts.generator (seed {seed})."
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
        out["blackouts"] = [
            _in_order(b, list(DateRange.model_fields)) if isinstance(b, Mapping) else b for b in out["blackouts"]
        ]
    if isinstance(out.get("frozen"), list):
        out["frozen"] = [
            _in_order(f, list(FrozenBooking.model_fields)) if isinstance(f, Mapping) else f for f in out["frozen"]
        ]
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
