"""The Problem in integer days, as every solver here sees it.

Day 0 is the horizon's first day. For each patient step we compute, once, the
set of start days that no other patient can influence: calendar, blackouts,
earliest start, washouts, and days on which the resource is closed outright.
The CP-SAT model, the greedy baseline and the capacity-free bound all start
from these domains, so they compare like with like.

Resource usage before day 0 (frozen history) is not counted: those days are
past and no longer bookable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from pathway.catalogue import StepKind
from pathway.cohort import Patient, PatientStep, Problem
from pathway.dates import say_day, say_span
from pathway.site import Resource


def tail_days(problem: Problem) -> int:
    """Days after the horizon end that steps following the infusion may occupy.

    Bounded by the longest template's total duration plus its positive minimum
    lags (inpatient stays, monitoring windows); capacity is counted there too.
    """
    return max(
        sum(s.max_duration_days or s.duration_days for s in t.steps)
        + sum(max(0, lag.min) for s in t.steps for lag in s.lags)
        for t in problem.catalogue.templates
    )


@dataclass(frozen=True)
class Use:
    resource: str  # resource id
    amount: int
    days: int  # daily resources: days used from the step's start; weekly: 1
    weekly: bool


@dataclass(frozen=True)
class LagSpec:
    other: int  # index of the earlier step
    anchor_end: bool
    min: int
    max: int | None
    rule: str


@dataclass
class StepSpec:
    index: int
    name: str
    kind: StepKind
    duration: int
    starts: list[int]  # allowed start days, sorted (capacity of other patients ignored)
    uses: list[Use]
    lags: list[LagSpec]
    frozen: int | None = None
    blocked_by: str = ""  # when ``starts`` is empty: the rule that emptied it, in words
    blocked_rule: str = ""


@dataclass
class PatientSpec:
    patient: Patient
    steps: list[StepSpec]
    approval: int
    target: int | None
    urgency_weight: int
    infusion: int  # index of the first infusion step
    collection: int | None  # first apheresis / donor collection step, for vein-to-vein
    conditioning: int | None
    graft_preferred_age_days: int | None = None  # fresh grafts: infusion - collection start, soft limit
    free_infusion: int | None = None  # the capacity-free infusion day, once known (delay costs count from it)

    @property
    def id(self) -> str:
        return self.patient.id

    def anchor(self, starts: list[int], lag: LagSpec) -> int:
        other = self.steps[lag.other]
        return starts[lag.other] + (other.duration if lag.anchor_end else 0)


@dataclass
class Instance:
    problem: Problem
    horizon_days: int
    last_day: int  # exclusive end of the day axis (horizon + tail)
    week_offset: int  # horizon start's weekday, so week = (day + offset) // 7
    capacity: dict[str, list[int]]  # daily: per day 0..last_day-1; weekly: per week index
    weekly: dict[str, bool]
    resources: dict[str, Resource]
    patients: list[PatientSpec] = field(default_factory=list)

    def day_of(self, d: date) -> int:
        return (d - self.problem.horizon.start).days

    def date_of(self, d: int) -> date:
        return self.problem.horizon.start + timedelta(days=d)

    def week(self, d: int) -> int:
        return (d + self.week_offset) // 7


def resource_cells(instance: Instance, step: StepSpec, start: int):
    """(resource id, cell, amount) for each day (or week) on the axes that ``step`` uses if it starts on ``start``."""
    for use in step.uses:
        if use.weekly:
            week = instance.week(start)
            if 0 <= week < len(instance.capacity[use.resource]):
                yield use.resource, week, use.amount
        else:
            for d in range(max(start, 0), min(start + use.days, instance.last_day)):
                yield use.resource, d, use.amount


class _DayRules:
    """Per-calendar and per-resource day flags over the day axis ``[first, last)``, as prefix counts
    (numpy arrays), so that every candidate start day of a step is checked at once."""

    def __init__(self, instance: Instance, first: int, daily: dict[str, np.ndarray]):
        self.problem = instance.problem
        self.first = first  # day index of array position 0
        self.last = instance.last_day
        self.week_offset = instance.week_offset
        self.weekly = {rid: caps for rid, caps in instance.capacity.items() if instance.weekly[rid]}
        self.daily = daily  # daily resource id -> capacity per day over [first, last)
        self._open: dict[str, np.ndarray] = {}
        self._short: dict[tuple[str, int], np.ndarray] = {}
        self._site_days: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _prefix(flags: np.ndarray) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])

    def open_prefix(self, calendar: str) -> np.ndarray:
        if calendar not in self._open:
            start = self.problem.horizon.start + timedelta(days=self.first)
            is_open = self.problem.site.open_days(calendar, start, self.last - self.first)
            self._open[calendar] = self._prefix(np.asarray(is_open, dtype=bool))
        return self._open[calendar]

    def short_prefix(self, rid: str, amount: int) -> np.ndarray:
        """Prefix count of days whose capacity is below ``amount`` (daily resources)."""
        key = (rid, amount)
        if key not in self._short:
            self._short[key] = self._prefix(self.daily[rid] < amount)
        return self._short[key]

    def site_days(self, calendar: str, check_days: int, uses: list[Use]) -> tuple[np.ndarray, np.ndarray]:
        """For every start day 0..last-1 of a step on ``calendar`` (open for its first ``check_days``)
        using ``uses``: whether the calendar rules it out, and whether a resource it needs is closed
        (capacity below its amount on a day it uses, or in its week). Made once per kind of step."""
        key = (calendar, check_days, tuple(uses))
        if key not in self._site_days:
            days = np.arange(self.last)
            closed = self.count(self.open_prefix(calendar), days, days + check_days) != check_days
            short = np.zeros(self.last, dtype=bool)
            for use in uses:
                if use.weekly:
                    capacity = np.asarray(self.weekly[use.resource])
                    short |= capacity[(days + self.week_offset) // 7] < use.amount
                else:
                    prefix = self.short_prefix(use.resource, use.amount)
                    short |= self.count(prefix, days, days + use.days) > 0
            self._site_days[key] = closed, short
        return self._site_days[key]

    def count(self, prefix: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Number of flagged days in ``[a, b)`` (day indices, arrays), days off the axis not counted."""
        a = np.clip(a, self.first, self.last) - self.first
        b = np.clip(b, self.first, self.last) - self.first
        return np.where(b > a, prefix[b] - prefix[a], 0)


def build_instance(problem: Problem) -> Instance:
    horizon = problem.horizon
    last_day = horizon.days + tail_days(problem)
    week_offset = horizon.start.weekday()
    instance = Instance(problem, horizon.days, last_day, week_offset, {}, {}, {})
    # Frozen history may start before day 0: calendars and closures are read from there on.
    first = min([0] + [instance.day_of(d) for p in problem.patients for d in problem.frozen(p).values()])
    daily: dict[str, np.ndarray] = {}
    for r in problem.site.resources:
        instance.resources[r.id] = r
        instance.weekly[r.id] = r.weekly
        if r.weekly:
            weeks = (last_day + week_offset) // 7 + 1
            mondays = (horizon.start + timedelta(days=7 * w - week_offset) for w in range(weeks))
            instance.capacity[r.id] = [problem.site.capacity_on(r, monday) for monday in mondays]
        else:
            days = problem.site.capacity_days(r, horizon.start + timedelta(days=first), last_day - first)
            daily[r.id] = np.asarray(days)
            instance.capacity[r.id] = days[-first:] if first else days

    rules = _DayRules(instance, first, daily)
    instance.patients = [_patient_spec(instance, rules, p) for p in problem.patients]
    return instance


def _patient_spec(instance: Instance, rules: _DayRules, patient: Patient) -> PatientSpec:
    problem = instance.problem
    steps = problem.steps(patient)
    index = {s.name: i for i, s in enumerate(steps)}
    frozen = {step: instance.day_of(day) for step, day in problem.frozen(patient).items()}
    earliest = instance.day_of(problem.earliest_day(patient))
    urgency = problem.site.objective.urgency_weights[patient.urgency]
    # Once infused (before the horizon), the rest of the pathway happens whatever the patient's plans: a blackout
    # then is a conflict for the checker to report (BLACKOUT, PRESENCE), never a reason to drop them.
    infused = any(ps.step.kind == StepKind.infusion and frozen.get(ps.name, 0) < 0 for ps in steps)

    specs = []
    for i, ps in enumerate(steps):
        uses = [Use(r.id, amount, 1 if r.weekly else used, r.weekly) for r, amount, used in ps.resources]
        lags = [LagSpec(index[lag.after], lag.anchor == "end", lag.min, lag.max, lag.rule) for lag in ps.step.lags]
        spec = StepSpec(i, ps.name, ps.step.kind, ps.duration, [], uses, lags, frozen.get(ps.name))
        if spec.frozen is not None:
            spec.starts = [spec.frozen]
        else:
            _allowed_starts(instance, rules, patient, ps, spec, earliest, blackouts_apply=not infused)
        specs.append(spec)

    kinds = [s.kind for s in specs]
    collection = next((i for i, k in enumerate(kinds) if k in (StepKind.apheresis, StepKind.donor_collection)), None)
    conditioning = next((i for i, k in enumerate(kinds) if k == StepKind.conditioning), None)
    return PatientSpec(
        patient=patient,
        steps=specs,
        approval=instance.day_of(patient.approval_date),
        target=instance.day_of(patient.target_infusion_date) if patient.target_infusion_date else None,
        urgency_weight=urgency,
        infusion=kinds.index(StepKind.infusion),
        collection=collection,
        conditioning=conditioning,
        graft_preferred_age_days=_graft_preferred_days(problem.template(patient)),
    )


def _graft_preferred_days(template) -> int | None:
    """A fresh graft's preferred age in whole days from the first collection day (48 h -> 2), or None."""
    hours = template.graft_preferred_age_hours
    return None if hours is None else hours // 24


def _allowed_starts(
    instance: Instance,
    rules: _DayRules,
    patient: Patient,
    ps: PatientStep,
    spec: StepSpec,
    earliest: int,
    blackouts_apply: bool = True,
):
    """Fill ``spec.starts``; if empty, say which rule emptied it."""
    problem = instance.problem
    step = ps.step
    duration = ps.duration
    lo = earliest
    washout = problem.washout_day(patient, step.kind)
    if washout is not None and instance.day_of(washout[0]) > lo:
        lo = instance.day_of(washout[0])
    hi = instance.last_day - duration
    if step.kind == StepKind.infusion:
        hi = min(hi, instance.horizon_days - 1)
    if lo > hi:
        if washout is not None and instance.day_of(washout[0]) == lo:
            spec.blocked_rule = "WASHOUT"
            spec.blocked_by = (
                f"{step.name} cannot start before {say_day(washout[0])} ({washout[1].days} days after the last "
                f"{washout[1].agent.replace('_', ' ')}), which is after the horizon"
            )
        else:
            spec.blocked_rule = "HORIZON"
            spec.blocked_by = (
                f"{step.name} cannot start on or after {say_day(problem.earliest_day(patient))} inside the horizon"
            )
        return

    check_days = duration if step.calendar_applies_to == "every_day" else 1
    # Days the patient must be on hand if the step starts on s: [s, s + length) for each length.
    # PATIENT_PRESENT steps for their own days; PRESENCE windows after an infusion.
    # (Only blackouts make them matter.)
    on_hand = []
    if blackouts_apply and patient.blackouts:
        on_hand = ([duration] if step.patient_present else []) + [
            p.days for p in problem.template(patient).presence_after(step.name)
        ]
    blackouts = (
        [(instance.day_of(b.first_day), instance.day_of(b.last_day)) for b in patient.blackouts] if on_hand else []
    )
    on_hand_days = max(on_hand, default=0)

    # Candidate start days lo..hi, each failing (in this order) the calendar, a blackout or a closure.
    closed, short = rules.site_days(step.calendar, check_days, spec.uses)
    closed, short = closed[lo : hi + 1], short[lo : hi + 1]
    days = np.arange(lo, hi + 1)
    away = np.zeros(len(days), dtype=bool)
    for b_first, b_last in blackouts:
        away |= (days <= b_last) & (days + on_hand_days - 1 >= b_first)
    starts = days[~(closed | away | short)].tolist()
    spec.starts = starts
    if not starts:
        # Every candidate day failed; name the filter that removed the most.
        counts = {
            "calendar": int(closed.sum()),
            "blackout": int((away & ~closed).sum()),
            "capacity": int((short & ~(closed | away)).sum()),
        }
        worst = max(counts, key=counts.get)
        spec.blocked_rule = {"calendar": "CALENDAR", "blackout": "BLACKOUT", "capacity": "CAPACITY"}[worst]
        spec.blocked_by = {
            "calendar": f"no {step.calendar.replace('_', ' ')} is left for {step.name} inside the horizon",
            "blackout": (
                "the patient's blackout dates "
                f"({', '.join(say_span(b.first_day, b.last_day) for b in patient.blackouts)}) "
                f"cover every possible day for {step.name}"
                + (
                    " or the days after it when the patient must be on hand"
                    if len(on_hand) > step.patient_present
                    else ""
                )
            ),
            "capacity": f"the resources {step.name} needs are closed on every possible day",
        }[worst]
