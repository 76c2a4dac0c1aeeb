"""Patients and cohorts, and the Problem: a cohort resolved against its catalogue and site.

The cohort file format (JSON) is the one the API will import; ``v2v schema``
prints its JSON Schema. Patient identifiers are pseudonymous.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator

from pathway.catalogue import (
    DEFAULT_CATALOGUE,
    Catalogue,
    Model,
    Step,
    StepKind,
    Template,
    Washout,
    load_catalogue,
    read_data_file,
)
from pathway.dates import IsoDate, say_day
from pathway.errors import InputError, validation_error
from pathway.inflight import Held, hold
from pathway.nhs import SCREENED, first_mention, screen
from pathway.site import CapacityChange, Resource, Site, Urgency

SITES_DIR = DEFAULT_CATALOGUE.parent / "sites"


class DateRange(Model):
    first_day: IsoDate
    last_day: IsoDate
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")
        return self

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def describe(self) -> str:
        """'the patient is away Sun 08 Aug 2027 .. Tue 17 Aug 2027 (family wedding)'."""
        reason = f" ({self.reason})" if self.reason else ""
        return f"the patient is away {say_day(self.first_day)} .. {say_day(self.last_day)}{reason}"


class FrozenBooking(Model):
    """A step already done, or fixed by a coordinator: the plan must keep it.

    ``last_day`` is given when the step is recorded as having taken other days than its template says
    (a manufacture the manufacturer reports late, a collection that took an extra day): a recorded fact,
    so its length is the step's duration for this patient, inside the catalogue's range or not."""

    step: str = Field(min_length=1)
    first_day: IsoDate
    last_day: IsoDate | None = Field(default=None, description="the recorded last day, when the step is a fact")

    @model_validator(mode="after")
    def _ordered(self) -> FrozenBooking:
        if self.last_day is not None and self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")
        return self

    @property
    def recorded_days(self) -> int | None:
        """The recorded length in days, or None when the step keeps its planned length."""
        return None if self.last_day is None else (self.last_day - self.first_day).days + 1


PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$"
PATIENT_ID = Field(pattern=PATIENT_ID_PATTERN, description="pseudonymous identifier, never an NHS number")
# what check_pseudonymous adds to the pattern (a letter somewhere), as JSON Schema can say it
PATIENT_ID_SCHEMA = {
    "type": "string",
    "minLength": 3,
    "maxLength": 32,
    "pattern": r"^(?:[A-Za-z]|[0-9][0-9_-]*[A-Za-z])[A-Za-z0-9_-]*$",
    "description": "pseudonymous identifier with at least one letter; never an NHS number (refused if it holds one)",
}


def check_pseudonymous(value: str) -> str:
    if value.replace("-", "").replace("_", "").isdigit():
        raise ValueError("an id made of digits could be an NHS or hospital number: use a pseudonymous id with letters")
    return screen(value)


class Patient(Model):
    id: str = PATIENT_ID
    centre: str
    pathway: str = Field(description="template id from the catalogue")
    approval_date: IsoDate = Field(description="approval / referral date")
    earliest_start: IsoDate | None = Field(default=None, description="no step before this date")
    urgency: Urgency = "routine"
    target_infusion_date: IsoDate | None = None
    last_doses: dict[str, IsoDate] = Field(
        default_factory=dict, description="agent -> date of last dose (chemotherapy, steroids, ...)"
    )
    blackouts: tuple[DateRange, ...] = Field(default=(), description="days the patient cannot attend")
    durations: dict[str, int] = Field(default_factory=dict, description="step -> days, within the catalogue's range")
    frozen: tuple[FrozenBooking, ...] = ()

    _pseudonymous = field_validator("id")(check_pseudonymous)


class Horizon(Model):
    start: IsoDate
    days: int = Field(ge=7, le=800)

    @property
    def end(self) -> date:
        """Last day of the horizon (inclusive)."""
        return self.start + timedelta(days=self.days - 1)


class Cohort(Model):
    name: str = Field(min_length=1)
    description: str = ""
    site: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")] | Site = Field(
        default="default",
        description="name of a site file of pathway/data/sites (default, national), or the site inline",
    )
    horizon: Horizon
    capacity_changes: tuple[CapacityChange, ...] = Field(default=(), description="closures/changes added to the site's")
    patients: tuple[Patient, ...]


@dataclass(frozen=True)
class PatientStep:
    """One step of one patient's pathway with its resolved duration and resources."""

    patient: Patient
    step: Step
    duration: int
    resources: tuple[tuple[Resource, int, int], ...]  # (resource, amount, days used)

    @property
    def name(self) -> str:
        return self.step.name


@dataclass(frozen=True)
class Problem:
    """Everything the solver and the checker need; pure data, no I/O."""

    catalogue: Catalogue
    site: Site
    cohort: Cohort

    @property
    def patients(self) -> tuple[Patient, ...]:
        return self.cohort.patients

    @property
    def horizon(self) -> Horizon:
        return self.cohort.horizon

    @cached_property
    def _templates(self) -> dict[str, Template]:
        return {t.id: t for t in self.catalogue.templates}

    def template(self, patient: Patient) -> Template:
        template = self._templates.get(patient.pathway)
        return template if template is not None else self.catalogue.template(patient.pathway)

    @cached_property
    def _step_names(self) -> dict[str, frozenset[str]]:
        return {t.id: frozenset(s.name for s in t.steps) for t in self.catalogue.templates}

    def step_names(self, patient: Patient) -> frozenset[str]:
        """The names of the steps of the patient's pathway."""
        names = self._step_names.get(patient.pathway)
        return names if names is not None else frozenset(s.name for s in self.template(patient).steps)

    @cached_property
    def _washouts(self) -> dict[str, tuple[Washout, ...]]:
        return {t.id: self.catalogue.washouts(t) for t in self.catalogue.templates}

    def washouts(self, patient: Patient) -> tuple[Washout, ...]:
        found = self._washouts.get(patient.pathway)
        return found if found is not None else self.catalogue.washouts(self.template(patient))

    @cached_property
    def _steps(self) -> dict[str, tuple[PatientStep, ...]]:
        return {p.id: tuple(self._resolve(p)) for p in self.patients}

    def steps(self, patient: Patient) -> tuple[PatientStep, ...]:
        return self._steps[patient.id]

    @cached_property
    def _held(self) -> dict[str, Held]:
        return {p.id: self._hold(p) for p in self.patients}

    def held(self, patient: Patient) -> Held:
        """The patient's frozen steps as every plan must keep them: given, plus those held with them
        (in flight), minus a conditioning that is given again (``pathway.inflight``)."""
        return self._held[patient.id]

    def frozen(self, patient: Patient) -> dict[str, date]:
        """Step name -> first day, for every step the plan must keep as it is."""
        return self.held(patient).frozen

    def _hold(self, patient: Patient) -> Held:
        durations = {ps.name: ps.duration for ps in self.steps(patient)}
        given = {f.step: f.first_day for f in patient.frozen}
        return hold(
            self.template(patient),
            durations,
            given,
            self.horizon.start,
            self.earliest_day(patient),
            lambda step, day: self._closed_or_blacked_out(patient, step, day, durations[step.name]),
        )

    def closed_day(self, step: Step, first_day: date, duration: int) -> tuple[date, str] | None:
        """The first day that the step's calendar closes to it if it starts on ``first_day``, and why."""
        days = [first_day + timedelta(days=i) for i in range(duration)]
        for day in days if step.calendar_applies_to == "every_day" else days[:1]:
            if not self.site.is_open(step.calendar, day):
                return day, self.site.closed_reason(step.calendar, day)
        return None

    def away(self, patient: Patient, step: Step, first_day: date, duration: int) -> str | None:
        """Why the patient cannot be there for ``step`` from ``first_day``: a blackout on a day they must
        attend it, or inside the presence needed after it; None if they can."""
        return self._blacked_out(patient, step, first_day, duration) or self.presence_clash(patient, step, first_day)

    def _blacked_out(self, patient: Patient, step: Step, first_day: date, duration: int) -> str | None:
        if step.patient_present:
            last_day = first_day + timedelta(days=duration - 1)
            for blackout in patient.blackouts:
                if blackout.first_day <= last_day and blackout.last_day >= first_day:
                    return blackout.describe()
        return None

    def _closed_or_blacked_out(self, patient: Patient, step: Step, first_day: date, duration: int) -> str | None:
        """Why ``step`` cannot start on ``first_day`` itself (presence after it aside), or None."""
        closed = self.closed_day(step, first_day, duration)
        return closed[1] if closed else self._blacked_out(patient, step, first_day, duration)

    def presence_clash(self, patient: Patient, step: Step, first_day: date) -> str | None:
        """Why a blackout rules out ``step`` on ``first_day`` because of the presence needed after it, or None."""
        for presence in self.template(patient).presence_after(step.name):
            last = first_day + timedelta(days=presence.days - 1)
            for blackout in patient.blackouts:
                if blackout.first_day <= last and blackout.last_day >= first_day:
                    return f"{blackout.describe()}, inside {presence.phrase()}"
        return None

    def patient(self, patient_id: str) -> Patient:
        for p in self.patients:
            if p.id == patient_id:
                return p
        raise KeyError(patient_id)

    @cached_property
    def _resource_by_kind_and_centre(self) -> dict[tuple[str, str | None], Resource | None]:
        return {}

    def _resources(self, kind: str, centre: str | None) -> Resource | None:
        """``Site.find_resource``, looked up once per kind and centre."""
        key = (kind, centre)
        if key not in self._resource_by_kind_and_centre:
            self._resource_by_kind_and_centre[key] = self.site.find_resource(kind, centre)
        return self._resource_by_kind_and_centre[key]

    def _resolve(self, patient: Patient):
        durations: dict[str, int] = {}
        recorded = {f.step: f.recorded_days for f in patient.frozen if f.recorded_days is not None}
        for step in self.template(patient).steps:
            if step.name in recorded:  # a fact: it took what it took
                duration = recorded[step.name]
            elif step.same_duration_as:
                duration = durations[step.same_duration_as]
            else:
                duration = patient.durations.get(step.name, step.duration_days)
            durations[step.name] = duration
            resources = []
            for use in step.uses:
                resource = self._resources(use.resource, patient.centre)
                assert resource is not None  # checked by load_problem
                resources.append((resource, use.amount, min(use.days or duration, duration)))
            yield PatientStep(patient, step, duration, tuple(resources))

    def earliest_day(self, patient: Patient) -> date:
        """No step of this patient starts before this (frozen bookings excepted)."""
        candidates = [patient.approval_date, self.horizon.start]
        if patient.earliest_start:
            candidates.append(patient.earliest_start)
        return max(candidates)

    def washout_day(self, patient: Patient, kind: StepKind) -> tuple[date, Washout] | None:
        """The first day a step of ``kind`` may start given the patient's last doses."""
        best: tuple[date, Washout] | None = None
        for rule in self.washouts(patient):
            last = patient.last_doses.get(rule.agent)
            if rule.before == kind and last is not None:
                day = last + timedelta(days=rule.days)
                if best is None or day > best[0]:
                    best = (day, rule)
        return best


def _site_from(cohort: Cohort, source: str) -> Site:
    if isinstance(cohort.site, Site):
        site = cohort.site
    else:
        path = SITES_DIR / f"{cohort.site}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in SITES_DIR.glob("*.yaml"))
            raise InputError(source, "site", f"unknown site {cohort.site!r} (known: {', '.join(known)})")
        raw = read_data_file(path)
        try:
            site = Site.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(str(path), exc) from None
    for i, change in enumerate(cohort.capacity_changes):
        if site.exact_resource(change.resource, change.centre) is None:
            raise InputError(
                source, f"capacity_changes[{i}].resource", site.no_such_resource(change.resource, change.centre)
            )
    if cohort.capacity_changes:
        raw_site = site.model_dump(mode="json")
        raw_site["capacity_changes"] += [c.model_dump(mode="json") for c in cohort.capacity_changes]
        try:
            site = Site.model_validate(raw_site)
        except ValidationError as exc:
            raise validation_error(source, exc) from None
    return site


def _check_references(catalogue: Catalogue, site: Site, cohort: Cohort, source: str) -> None:
    for name in sorted(catalogue.calendar_names()):
        if name not in site.calendars:
            raise InputError(source, "site.calendars", f"calendar {name!r} used by the catalogue is not defined")
    known_pathways = {t.id for t in catalogue.templates}
    seen: set[str] = set()
    for i, p in enumerate(cohort.patients):
        where = f"patients[{i}]"
        if p.id in seen:
            raise InputError(source, f"{where}.id", f"patient id {p.id!r} appears twice")
        seen.add(p.id)
        if p.centre not in site.centres:
            raise InputError(
                source, f"{where}.centre", f"unknown centre {p.centre!r} (site has {', '.join(site.centres)})"
            )
        if p.pathway not in known_pathways:
            raise InputError(
                source,
                f"{where}.pathway",
                f"unknown pathway {p.pathway!r} (known: {', '.join(sorted(known_pathways))})",
            )
        template = catalogue.template(p.pathway)
        for step in template.steps:
            for use in step.uses:
                if site.find_resource(use.resource, p.centre) is None:
                    raise InputError(
                        source,
                        f"{where}.pathway",
                        f"pathway {p.pathway!r} needs resource {use.resource!r}, "
                        f"which centre {p.centre!r} does not have",
                    )
        names = {s.name: s for s in template.steps}
        for step_name, days in p.durations.items():
            step = names.get(step_name)
            if step is None:
                raise InputError(
                    source, f"{where}.durations.{step_name}", f"pathway {p.pathway!r} has no step {step_name!r}"
                )
            high = step.max_duration_days or step.duration_days
            if not step.duration_days <= days <= high or step.same_duration_as:
                raise InputError(
                    source,
                    f"{where}.durations.{step_name}",
                    f"{days} days is outside the allowed {step.duration_days}..{high}"
                    + (f" (it follows {step.same_duration_as!r})" if step.same_duration_as else ""),
                )
        frozen_steps = set()
        for j, booking in enumerate(p.frozen):
            if booking.step not in names:
                raise InputError(
                    source, f"{where}.frozen[{j}].step", f"pathway {p.pathway!r} has no step {booking.step!r}"
                )
            if booking.step in frozen_steps:
                raise InputError(source, f"{where}.frozen[{j}].step", f"step {booking.step!r} is frozen twice")
            frozen_steps.add(booking.step)
        washout_agents = {w.agent for w in catalogue.washouts(template)}
        for agent in p.last_doses:
            if agent not in washout_agents:
                raise InputError(
                    source,
                    f"{where}.last_doses.{agent}",
                    f"no washout rule for {agent!r} on pathway {p.pathway!r} "
                    f"(known: {', '.join(sorted(washout_agents)) or 'none'})",
                )
        if p.target_infusion_date and p.target_infusion_date < p.approval_date:
            raise InputError(source, f"{where}.target_infusion_date", "is before the approval date")


def parse_cohort(raw: object, source: str = "cohort", catalogue: Catalogue | None = None) -> Problem:
    try:
        cohort = Cohort.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(source, exc) from None
    mention = first_mention(raw)
    if mention:  # a cohort's texts (reasons, names) are stored on import: never a patient's number
        raise InputError(source, mention, SCREENED)
    catalogue = catalogue or load_catalogue()
    site = _site_from(cohort, source)
    _check_references(catalogue, site, cohort, source)
    problem = Problem(catalogue=catalogue, site=site, cohort=cohort)
    for i, patient in enumerate(problem.patients):
        for why in problem.held(patient).refused.values():
            raise InputError(source, f"patients[{i}].frozen", f"patient {patient.id}: {why}")
    return problem


def load_problem(path: Path | str, catalogue: Catalogue | None = None) -> Problem:
    path = Path(path)
    return parse_cohort(read_data_file(path), source=str(path), catalogue=catalogue)
