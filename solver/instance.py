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
    """Per-calendar and per-resource boolean day arrays with prefix sums (fast range checks)."""

    def __init__(self, problem: Problem, first: int, last: int):
        self.problem = problem
        self.first = first  # day index of array position 0
        self.last = last
        self._open: dict[str, list[int]] = {}
        self._short: dict[tuple[str, int], list[int]] = {}

    def _prefix(self, flags) -> list[int]:
        out = [0]
        for f in flags:
            out.append(out[-1] + (1 if f else 0))
        return out

    def _days(self):
        start = self.problem.horizon.start
        return (start + timedelta(days=d) for d in range(self.first, self.last))

    def open_prefix(self, calendar: str) -> list[int]:
        if calendar not in self._open:
            site = self.problem.site
            self._open[calendar] = self._prefix(site.is_open(calendar, day) for day in self._days())
        return self._open[calendar]

    def short_prefix(self, resource: Resource, amount: int) -> list[int]:
        """Prefix count of days whose capacity is below ``amount`` (daily resources)."""
        key = (resource.id, amount)
        if key not in self._short:
            site = self.problem.site
            self._short[key] = self._prefix(site.capacity_on(resource, day) < amount for day in self._days())
        return self._short[key]

    def count(self, prefix: list[int], a: int, b: int) -> int:
        """Number of flagged days in [a, b) (day indices)."""
        a = max(a, self.first) - self.first
        b = min(b, self.last) - self.first
        return prefix[b] - prefix[a] if b > a else 0


def build_instance(problem: Problem) -> Instance:
    horizon = problem.horizon
    last_day = horizon.days + tail_days(problem)
    week_offset = horizon.start.weekday()
    capacity: dict[str, list[int]] = {}
    weekly: dict[str, bool] = {}
    resources: dict[str, Resource] = {}
    for r in problem.site.resources:
        resources[r.id] = r
        weekly[r.id] = r.weekly
        if r.weekly:
            weeks = (last_day + week_offset) // 7 + 1
            capacity[r.id] = [
                problem.site.capacity_on(r, horizon.start + timedelta(days=7 * w - week_offset)) for w in range(weeks)
            ]
        else:
            capacity[r.id] = [problem.site.capacity_on(r, horizon.start + timedelta(days=d)) for d in range(last_day)]

    instance = Instance(problem, horizon.days, last_day, week_offset, capacity, weekly, resources)
    first = min([0] + [instance.day_of(d) for p in problem.patients for d in problem.frozen(p).values()])
    rules = _DayRules(problem, first, last_day)
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

    open_prefix = rules.open_prefix(step.calendar)
    check_days = duration if step.calendar_applies_to == "every_day" else 1
    # Days the patient must be on hand if the step starts on s: [s, s + length) for each length.
    # PATIENT_PRESENT steps for their own days; PRESENCE windows after an infusion.
    on_hand = ([duration] if step.patient_present else []) + [
        p.days for p in problem.template(patient).presence_after(step.name)
    ]
    on_hand = on_hand if blackouts_apply else []
    blackouts = (
        [(instance.day_of(b.first_day), instance.day_of(b.last_day)) for b in patient.blackouts] if on_hand else []
    )
    on_hand_days = max(on_hand, default=0)
    shortages = [(rules.short_prefix(instance.resources[u.resource], u.amount), u) for u in spec.uses if not u.weekly]
    weekly = [u for u in spec.uses if u.weekly]

    counts = {"calendar": 0, "blackout": 0, "capacity": 0}
    starts = []
    for s in range(lo, hi + 1):
        if rules.count(open_prefix, s, s + check_days) != check_days:
            counts["calendar"] += 1
            continue
        if any(s <= b_last and b_first <= s + on_hand_days - 1 for b_first, b_last in blackouts):
            counts["blackout"] += 1
            continue
        if any(rules.count(prefix, s, s + u.days) for prefix, u in shortages) or any(
            instance.capacity[u.resource][instance.week(s)] < u.amount for u in weekly
        ):
            counts["capacity"] += 1
            continue
        starts.append(s)
    spec.starts = starts
    if not starts:
        # Every candidate day failed; name the filter that removed the most.
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
