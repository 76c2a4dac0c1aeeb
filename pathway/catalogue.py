"""The pathway catalogue: templates of steps, read from data files.

A template is a list of steps. Each step has a duration in calendar days, a
calendar that its days must fall on, the resources it uses per day, and lags
to earlier steps. Nothing product-specific lives in Python: every number is in
``pathway/data/pathways.yaml`` and can be edited per site.

Lag convention: a lag measures ``start(this) - anchor(other)`` in days, where
the anchor is the other step's first day (``anchor: start``) or the day after
its last day (``anchor: end``). So ``anchor: end, min: 0`` means "the day after
the other step finishes, at the earliest", and Yescarta's infusion on day 0
after conditioning on days -5..-3 is ``anchor: end, min: 2``.
"""

from __future__ import annotations

import json
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pathway.errors import InputError, validation_error


class StepKind(str, Enum):
    """What a step is, in the domain's words. The checker keys rules on these."""

    referral = "referral"  # notice periods, e.g. registry donor work-up
    mobilisation = "mobilisation"  # G-CSF injections before a harvest
    apheresis = "apheresis"  # collection of cells from the patient at the centre
    donor_collection = "donor_collection"  # collection from a registry donor
    processing = "processing"  # lab processing / cryopreservation
    manufacture = "manufacture"  # CAR-T manufacture (in-house device or commercial)
    release = "release"  # product received and released at the centre
    conditioning = "conditioning"  # lymphodepletion or transplant conditioning
    infusion = "infusion"
    inpatient = "inpatient"  # admission / daily monitoring
    monitoring = "monitoring"  # high-risk window after infusion


# Steps during which the patient must be physically present (blackouts apply).
PATIENT_PRESENT_KINDS = frozenset(
    {StepKind.mobilisation, StepKind.apheresis, StepKind.conditioning, StepKind.infusion, StepKind.inpatient}
)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceUse(Model):
    """Use of one resource by a step: ``amount`` units on each day it is used.

    For daily resources the step uses it on every one of its days (or only the
    first ``days`` of them). For weekly resources (manufacturer slots) one unit
    is taken in the ISO week of the step's first day.
    """

    resource: str = Field(min_length=1, description="resource kind, e.g. apheresis_machine")
    amount: int = Field(default=1, ge=1)
    days: int | None = Field(default=None, ge=1, description="only the first N days of the step")


class Lag(Model):
    """``min <= start(this step) - anchor(after) <= max`` (days)."""

    after: str = Field(min_length=1, description="name of an earlier step in the same template")
    anchor: Literal["start", "end"] = "end"
    min: int = 0
    max: int | None = None
    rule: Literal["step_lag", "infusion_window", "release_before_conditioning", "graft_age"] = "step_lag"
    note: str = ""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Lag:
        if self.max is not None and self.max < self.min:
            raise ValueError(
                f"lag after {self.after!r}: max {self.max} is below min {self.min}, so it can never be met"
            )
        return self


class PublishedRange(Model):
    """A published range of days, and which end of it the catalogue's number takes.

    Kept beside the number so the pages and explanations can say "6 weeks - 3
    months published; this catalogue uses 42 days, the lower bound".
    """

    low: int = Field(ge=0)
    high: int = Field(ge=0)
    source: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> PublishedRange:
        if self.high < self.low:
            raise ValueError(f"published range {self.low}..{self.high}: high is below low")
        return self

    def choice(self, value: int) -> str:
        """'the lower bound of the published 42-90 days', or where ``value`` sits in it."""
        where = (
            "the lower bound"
            if value == self.low
            else "the upper bound"
            if value == self.high
            else f"{value} days"
            if self.low < value < self.high
            else f"{value} days, outside"
        )
        return f"{where} of the published {self.low}-{self.high} days" + (f" ({self.source})" if self.source else "")


class Step(Model):
    name: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    kind: StepKind
    duration_days: int = Field(ge=1)
    max_duration_days: int | None = Field(
        default=None, ge=1, description="upper bound for a per-patient duration override (e.g. 2 harvest days)"
    )
    same_duration_as: str | None = Field(
        default=None, description="take the (possibly overridden) duration of this earlier step"
    )
    calendar: str = Field(default="any_day", description="name of a site calendar")
    calendar_applies_to: Literal["start", "every_day"] = "start"
    uses: tuple[ResourceUse, ...] = ()
    lags: tuple[Lag, ...] = ()
    published_days: PublishedRange | None = Field(
        default=None, description="the published range the duration is taken from (e.g. sterility testing 7-14 days)"
    )
    repeat_if_infusion_slips: bool = Field(
        default=False,
        description=(
            "conditioning only: once given, if the infusion can no longer fall inside its window after it "
            "(the label's limit), conditioning is given again rather than the patient dropped"
        ),
    )
    note: str = ""

    @property
    def patient_present(self) -> bool:
        return self.kind in PATIENT_PRESENT_KINDS


class Washout(Model):
    """A step of ``before`` kind may start no sooner than ``days`` after the last ``agent``."""

    agent: str = Field(min_length=1)
    before: StepKind
    days: int = Field(ge=1)
    published_days: PublishedRange | None = Field(
        default=None, description="the published range ``days`` is taken from"
    )
    note: str = ""


class Presence(Model):
    """After a step starts (an infusion), the patient must be on hand for ``days`` days, that day included.

    ``attend``: comes in (daily monitoring, checks in week 1); ``stay_near``:
    stays within reach of the centre. A blackout is a day the patient cannot
    attend and is away, so it breaks either need alike (checker: PRESENCE); the
    two are kept apart for the explanation and for a site that records absences
    by kind. The solver removes such start days from the step's domain
    (``solver.instance``).
    """

    after: str = Field(min_length=1, description="the step whose first day opens the window (an infusion)")
    days: int = Field(ge=1)
    need: Literal["attend", "stay_near"]
    note: str = ""

    def phrase(self) -> str:
        what = "must attend the centre" if self.need == "attend" else "must stay near the centre"
        return f"the {self.days} days from {self.after.replace('_', ' ')}, when the patient {what}"


class Template(Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    family: Literal["commercial_car_t", "in_house_car_t", "autologous_sct", "allogeneic_sct"]
    graft_max_age_hours: int | None = Field(default=None, ge=1, description="fresh grafts only: the hard limit")
    graft_preferred_age_hours: int | None = Field(
        default=None, ge=1, description="fresh grafts only: the age to stay under when possible (soft)"
    )
    risk_window_days: int | None = Field(
        default=None,
        ge=1,
        description=(
            "days from each infusion (that day included) that a monitoring step must cover: the high-risk "
            "window with ICU back-up (checker: RISK_WINDOW)"
        ),
    )
    presence: tuple[Presence, ...] = Field(default=(), description="presence needed after a step (checker: PRESENCE)")
    washout_set: str | None = None
    steps: tuple[Step, ...] = Field(min_length=1)
    note: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Template:
        seen: set[str] = set()
        resources_by_step: dict[str, str] = {}
        for i, step in enumerate(self.steps):
            where = f"steps[{i}] ({step.name})"
            if step.name in seen:
                raise ValueError(f"{where}: step name is used twice")
            if step.max_duration_days is not None and step.max_duration_days < step.duration_days:
                raise ValueError(f"{where}: max_duration_days is below duration_days")
            if step.same_duration_as is not None and step.same_duration_as not in seen:
                raise ValueError(f"{where}: same_duration_as {step.same_duration_as!r} is not an earlier step")
            for lag in step.lags:
                if lag.after not in seen:
                    raise ValueError(f"{where}: lag after {lag.after!r}, which is not an earlier step")
            for use in step.uses:
                if use.resource in resources_by_step:
                    # Keeping one resource to one step lets every step be booked
                    # against its own residual capacity (greedy and explanations).
                    raise ValueError(
                        f"{where}: resource {use.resource!r} is already used by step "
                        f"{resources_by_step[use.resource]!r}; fold the use into one step"
                    )
                resources_by_step[use.resource] = step.name
            seen.add(step.name)
        kinds = [s.kind for s in self.steps]
        if kinds.count(StepKind.infusion) < 1:
            raise ValueError("a template needs an infusion step")
        for i, step in enumerate(self.steps):
            if step.repeat_if_infusion_slips and step.kind != StepKind.conditioning:
                raise ValueError(f"steps[{i}] ({step.name}): repeat_if_infusion_slips is for conditioning steps only")
        for i, presence in enumerate(self.presence):
            if presence.after not in seen:
                raise ValueError(f"presence[{i}]: after {presence.after!r}, which is not a step")
        _require_release_lags(self)
        _require_graft_age(self)
        _require_risk_window(self)
        return self

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def presence_after(self, step_name: str) -> list[Presence]:
        return [p for p in self.presence if p.after == step_name]

    def steps_of(self, kind: StepKind) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]


def product_ready_step(template: Template, conditioning_index: int) -> Step | None:
    """The step that makes the product available before the conditioning at ``conditioning_index``:
    the last release before it, else the last processing (a stored harvest); None if neither
    comes before it (a fresh allo graft, collected after conditioning starts)."""
    earlier = template.steps[:conditioning_index]
    for kind in (StepKind.release, StepKind.processing):
        of_kind = [s for s in earlier if s.kind == kind]
        if of_kind:
            return of_kind[-1]
    return None


def _require_release_lags(template: Template) -> None:
    """RELEASE_BEFORE_CONDITIONING has one home in the solver: this lag. Refuse a template without it.

    Every conditioning step that has a product-ready step before it must carry a
    ``rule: release_before_conditioning`` lag on that step whose minimum keeps
    conditioning after the product's last day (anchor ``end`` with min >= 0, or
    anchor ``start`` with min >= the step's duration).
    """
    for i, step in enumerate(template.steps):
        if step.kind != StepKind.conditioning:
            continue
        ready = product_ready_step(template, i)
        if ready is None:
            continue
        source = template.step(ready.same_duration_as) if ready.same_duration_as else ready
        longest = max(ready.duration_days, source.max_duration_days or source.duration_days)
        tied = [
            lag
            for lag in step.lags
            if lag.after == ready.name
            and lag.rule == "release_before_conditioning"
            and lag.min >= (0 if lag.anchor == "end" else longest)
        ]
        if not tied:
            raise ValueError(
                f"steps[{i}] ({step.name}): conditioning must be tied to the product's release: add "
                f"{{after: {ready.name}, anchor: end, min: 0, rule: release_before_conditioning}} to its lags "
                "(conditioning never starts before the product is released)"
            )


def _require_graft_age(template: Template) -> None:
    """A fresh graft (a donor collection followed by an infusion with no processing between) needs
    its age limit, and a ``rule: graft_age`` lag that keeps the infusion inside it."""
    for i, step in enumerate(template.steps):
        if step.kind != StepKind.infusion:
            continue
        earlier = list(template.steps[:i])
        collections = [j for j, s in enumerate(earlier) if s.kind == StepKind.donor_collection]
        if not collections:
            continue
        stored = any(s.kind == StepKind.processing for s in earlier[collections[-1] :])
        if stored:
            continue
        collection = earlier[collections[-1]]
        if template.graft_max_age_hours is None:
            raise ValueError(
                f"steps[{i}] ({step.name}): a fresh graft is infused here, so the template needs graft_max_age_hours"
            )
        ages = [
            _graft_age_days(lag, collection)
            for lag in step.lags
            if lag.after == collection.name and lag.rule == "graft_age"
        ]
        limit = template.graft_max_age_hours
        if not any(low >= 0 and high is not None and high * 24 <= limit for low, high in ages):
            raise ValueError(
                f"steps[{i}] ({step.name}): a fresh graft is infused here: add a lag after {collection.name!r} "
                f"with rule: graft_age that keeps the infusion on or after the collection's first day and within "
                f"graft_max_age_hours ({limit} h) of it"
            )
    if template.graft_preferred_age_hours is not None and (
        template.graft_max_age_hours is None or template.graft_preferred_age_hours > template.graft_max_age_hours
    ):
        raise ValueError("graft_preferred_age_hours needs graft_max_age_hours at or above it")


def _graft_age_days(lag: Lag, collection: Step) -> tuple[int, int | None]:
    """The infusion's day range from the collection's first day that a ``graft_age`` lag allows."""
    if lag.anchor == "start":
        return lag.min, lag.max
    longest = collection.max_duration_days or collection.duration_days
    return collection.duration_days + lag.min, None if lag.max is None else longest + lag.max


def _risk_window_offsets(template: Template, monitoring: Step) -> dict[str, tuple[int, int]] | None:
    """Each infusion step's start offset range from ``monitoring``'s start, from direct lags; None if unknown."""
    infusions = [s for s in template.steps if s.kind == StepKind.infusion]
    fixed = [lag for lag in monitoring.lags if lag.anchor == "start" and lag.min == lag.max]
    anchor = next((lag for lag in fixed if lag.after in {s.name for s in infusions}), None)
    if anchor is None:
        return None
    offsets = {anchor.after: (-anchor.min, -anchor.min)}
    for infusion in infusions:
        if infusion.name in offsets:
            continue
        link = next(
            (lag for lag in infusion.lags if lag.after in offsets and lag.anchor == "start" and lag.max is not None),
            None,
        )
        if link is None:
            return None
        low, high = offsets[link.after]
        offsets[infusion.name] = (low + link.min, high + link.max)
    return offsets


def _require_risk_window(template: Template) -> None:
    """With ``risk_window_days``, a monitoring step starts with the first infusion and lasts until
    ``risk_window_days`` after the latest dose can fall (obe-cel's second dose too)."""
    if template.risk_window_days is None:
        return
    monitoring = [s for s in template.steps if s.kind == StepKind.monitoring]
    if not monitoring:
        raise ValueError("risk_window_days needs a monitoring step (the high-risk window)")
    step = monitoring[0]
    offsets = _risk_window_offsets(template, step)
    if offsets is None:
        raise ValueError(
            f"{step.name}: the high-risk window must start with an infusion (anchor: start, min = max) and every "
            "other infusion must be tied to it by a bounded lag, so its cover can be checked"
        )
    for name, (soonest, latest) in offsets.items():
        if soonest < 0:
            raise ValueError(f"{step.name}: the high-risk window can start after {name}; it must open by the dose")
        if latest + template.risk_window_days > step.duration_days:
            raise ValueError(
                f"{step.name}: {step.duration_days} days do not cover {template.risk_window_days} days after "
                f"{name}, which can start up to {latest} days after the window opens "
                f"(needs at least {latest + template.risk_window_days})"
            )


class Catalogue(Model):
    washout_sets: dict[str, tuple[Washout, ...]] = {}
    templates: tuple[Template, ...]

    @model_validator(mode="after")
    def _references(self) -> Catalogue:
        ids = [t.id for t in self.templates]
        for t in self.templates:
            if ids.count(t.id) > 1:
                raise ValueError(f"template id {t.id!r} is used twice")
            if t.washout_set is not None and t.washout_set not in self.washout_sets:
                raise ValueError(f"template {t.id!r}: unknown washout_set {t.washout_set!r}")
        return self

    def template(self, template_id: str) -> Template:
        for t in self.templates:
            if t.id == template_id:
                return t
        raise KeyError(template_id)

    def washouts(self, template: Template) -> tuple[Washout, ...]:
        return self.washout_sets.get(template.washout_set, ()) if template.washout_set else ()

    def calendar_names(self) -> set[str]:
        return {s.calendar for t in self.templates for s in t.steps}

    def with_remanufacture(self) -> Catalogue:
        """This catalogue plus, for every template with a manufacture step, its re-manufacture variant."""
        have = {t.id for t in self.templates}
        extra = [v for t in self.templates if (v := remanufacture_variant(t)) is not None and v.id not in have]
        return self.model_copy(update={"templates": self.templates + tuple(extra)}) if extra else self


REMANUFACTURE = "--re-manufacture"


def remanufacture_variant(template: Template) -> Template | None:
    """The pathway after a product failed its release (out of specification) and is made again
    from retained cells: the same steps, but manufacture is no longer tied to the collection
    day, so it starts when the patient's earliest start and a free slot allow. None for
    templates without a manufacture step, or that are a variant already."""
    if template.id.endswith(REMANUFACTURE):
        return None
    manufacture = next((s for s in template.steps if s.kind == StepKind.manufacture), None)
    if manufacture is None:
        return None
    steps = tuple(s.model_copy(update={"lags": ()}) if s.name == manufacture.name else s for s in template.steps)
    return template.model_copy(
        update={
            "id": template.id + REMANUFACTURE,
            "name": f"{template.name}, re-manufactured from retained cells",
            "steps": steps,
        }
    )


# Package data; an installed package is a directory, so this is a pathlib.Path. The site
# files are next to it, in sites/ (pathway.cohort.SITES_DIR).
DEFAULT_CATALOGUE: Path = resources.files("pathway") / "data" / "pathways.yaml"


# libyaml's safe loader where PyYAML was built with it: the same documents, about 8 times faster on a
# national cohort. Its error messages and marks differ, so a document it refuses is read again by the
# pure-Python loader for the message.
_FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_data_file(path: Path) -> object:
    """Read a YAML or JSON file, raising InputError naming the file on failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "", "not a UTF-8 text file") from None
    try:  # JSON is YAML; the json module reads it several times faster
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.load(text, Loader=_FAST_SAFE_LOADER)
    except yaml.YAMLError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise InputError(str(path), where, f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}") from None


def load_catalogue(path: Path | str = DEFAULT_CATALOGUE) -> Catalogue:
    path = Path(path)
    raw = read_data_file(path)
    return parse_catalogue(raw, source=str(path))


def parse_catalogue(raw: object, source: str = "catalogue") -> Catalogue:
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(source, exc) from None
