"""Why each of a patient's dates is what it is.

For every booked step: the earliest day the patient's own rules allow (approval,
earliest start, washout, the lag after an earlier step) and which of them binds;
then, if the booking is later than that, what ruled out each day in between
(calendar, blackout, a full resource with the patients holding it), or that the
day was chosen to fit a later step or to shorten the wait for the infusion.
Works on any plan (CP-SAT, greedy or hand-made), from the plan's dates alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from pathway.cohort import Patient, PatientStep, Problem
from pathway.dates import say_day
from pathway.plan import Plan
from pathway.usage import resource_load, step_cells

_d = say_day


@dataclass
class StepExplanation:
    step: str
    first_day: date
    last_day: date
    reasons: list[str] = field(default_factory=list)


@dataclass
class PatientExplanation:
    patient: str
    pathway: str
    summary: list[str]
    steps: list[StepExplanation]

    def text(self) -> str:
        lines = [f"patient {self.patient} ({self.pathway})", *self.summary]
        for s in self.steps:
            span = _d(s.first_day) if s.first_day == s.last_day else f"{_d(s.first_day)} .. {_d(s.last_day)}"
            lines.append(f"- {s.step}: {span}")
            lines.extend(f"    {r}" for r in s.reasons)
        return "\n".join(lines)


def _usage(problem: Problem, plan: Plan) -> dict[tuple[str, date], list[str]]:
    """(resource id, day or week-Monday) -> patient ids holding it, one entry per unit."""
    load = resource_load(problem, plan.bookings)
    return {cell: [u.patient for u in uses for _ in range(u.amount)] for cell, uses in load.cells.items()}


def explain_patient(problem: Problem, plan: Plan, patient_id: str) -> PatientExplanation:
    patient = problem.patient(patient_id)
    booked = plan.bookings_of(patient_id)
    summary = [f"approved {_d(patient.approval_date)}, urgency {patient.urgency}"]
    for u in plan.unschedulable:
        if u.patient == patient_id:
            summary.append(f"not scheduled [{u.rule}]: {u.reason}")
    for o in plan.outcomes:
        if o.patient == patient_id and o.infusion:
            line = f"infusion {_d(o.infusion)}, {(o.infusion - patient.approval_date).days} days after approval"
            if o.capacity_free_infusion and o.capacity_free_infusion < o.infusion:
                line += f"; alone on the site it could be {_d(o.capacity_free_infusion)}"
            summary.append(line)
            summary.extend(f"  delayed by: {cell}" for cell in o.delayed_by)
    if not booked:
        return PatientExplanation(patient_id, patient.pathway, summary, [])

    usage = _usage(problem, plan)
    held = problem.held(patient)
    steps = []
    for ps in problem.steps(patient):
        booking = booked.get(ps.name)
        if booking is None:
            continue
        explanation = StepExplanation(ps.name, booking.first_day, booking.last_day)
        # days before this were ruled out by the presence needed after the step, if anything (not yet said)
        scanned_from = booking.first_day
        if ps.name in held.derived:
            explanation.reasons.append(f"frozen: {held.derived[ps.name]}")
        elif ps.name in held.frozen:
            explanation.reasons.append("frozen: already done or fixed by a coordinator")
        else:
            if ps.name in held.repeated:
                explanation.reasons.append(held.repeated[ps.name])
            lower = _earliest(problem, patient, ps, booked)
            scanned_from = min(lower[0], booking.first_day)
            explanation.reasons.extend(_reasons(problem, patient, ps, booking.first_day, lower, usage))
        if ps.step.published_days is not None:
            explanation.reasons.append(f"lasts {ps.duration} days: {ps.step.published_days.choice(ps.duration)}")
        explanation.reasons.extend(_presence_reasons(problem, patient, ps, scanned_from))
        steps.append(explanation)
    return PatientExplanation(patient_id, patient.pathway, summary, steps)


def _presence_reasons(problem: Problem, patient: Patient, ps: PatientStep, day: date) -> list[str]:
    """The presence needed after the step (an infusion), and the days before ``day`` (from the
    patient's earliest day) it ruled out: the ones a later step's window hid from ``_reasons``."""
    reasons = []
    first = problem.earliest_day(patient)
    runs: list[tuple[str, date, date]] = []
    for offset in range((day - first).days):
        d = first + timedelta(days=offset)
        clash = problem.presence_clash(patient, ps.step, d)
        if clash is None:
            continue
        if runs and runs[-1][0] == clash and runs[-1][2] == d - timedelta(days=1):
            runs[-1] = (clash, runs[-1][1], d)
        else:
            runs.append((clash, d, d))
    for clash, start, end in runs:
        when = _d(start) if start == end else f"{_d(start)} .. {_d(end)}"
        reasons.append(f"not {when}: {clash}")
    for presence in problem.template(patient).presence_after(ps.name):
        reasons.append(f"then {presence.phrase()}" + (f" ({presence.note})" if presence.note else ""))
    return reasons


def _rigid_group(steps: list[PatientStep], name: str) -> dict[str, int]:
    """Steps tied to ``name`` by fixed lags (min == max), with their start offset from it.

    Moving a step moves these with it: an apheresis drags its same-day shipment
    to the manufacturer, an infusion its monitoring window.
    """
    by_name = {ps.name: ps for ps in steps}
    edges: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for ps in steps:
        for lag in ps.step.lags:
            if lag.max is not None and lag.min == lag.max:
                other = by_name[lag.after]
                offset = lag.min + (other.duration if lag.anchor == "end" else 0)
                edges[lag.after].append((ps.name, offset))
                edges[ps.name].append((lag.after, -offset))
    group = {name: 0}
    todo = [name]
    while todo:
        current = todo.pop()
        for other, offset in edges[current]:
            if other not in group:
                group[other] = group[current] + offset
                todo.append(other)
    return group


def _earliest(problem: Problem, patient: Patient, ps: PatientStep, booked) -> tuple[date, str]:
    """The earliest day the patient's own rules and the lags to the booked steps allow, and which binds."""
    bounds: list[tuple[date, str]] = [
        (problem.earliest_day(patient), "earliest allowed start (approval, earliest start or horizon start)")
    ]
    washout = problem.washout_day(patient, ps.step.kind)
    if washout is not None:
        rule = washout[1]
        chosen = f"; {rule.published_days.choice(rule.days)}" if rule.published_days else ""
        bounds.append((washout[0], f"{rule.days} days after the last {rule.agent.replace('_', ' ')} (washout{chosen})"))
    for lag in ps.step.lags:
        other = booked.get(lag.after)
        if other is None:
            continue
        anchor = other.first_day if lag.anchor == "start" else other.last_day + timedelta(days=1)
        what = f"{lag.after} {'start' if lag.anchor == 'start' else 'end'}"
        bounds.append(
            (anchor + timedelta(days=lag.min), f"{lag.min:+d} days from {what} ({lag.rule.replace('_', ' ')})")
        )
    return max(bounds, key=lambda b: b[0])


def _reasons(problem: Problem, patient: Patient, ps: PatientStep, day: date, earliest, usage) -> list[str]:
    lower, why = earliest
    if day == lower:
        return [f"earliest possible: {why}"]
    reasons = [f"could be {_d(lower)} at the earliest: {why}"]
    if day < lower:
        return reasons + ["booked before its earliest day: run `v2v check` on this plan"]
    steps = list(problem.steps(patient))
    group = [(next(p for p in steps if p.name == n), offset) for n, offset in _rigid_group(steps, ps.name).items()]
    runs: list[tuple[str, date, date]] = []
    d = lower
    while d < day:
        reason = _why_not(problem, patient, group, d, usage)
        if runs and runs[-1][0] == reason and runs[-1][2] == d - timedelta(days=1):
            runs[-1] = (reason, runs[-1][1], d)
        else:
            runs.append((reason, d, d))
        d += timedelta(days=1)
    for reason, first, last in runs:
        when = _d(first) if first == last else f"{_d(first)} .. {_d(last)}"
        reasons.append(f"{when}: {reason}")
    return reasons


def _why_not(problem: Problem, patient: Patient, group: list[tuple[PatientStep, int]], start: date, usage) -> str:
    """Why the step (and the steps rigidly tied to it) could not start on ``start``."""
    site = problem.site
    for ps, offset in group:
        first = start + timedelta(days=offset)
        closed = problem.closed_day(ps.step, first, ps.duration)
        if closed:
            day, reason = closed
            return reason if offset == 0 else f"{ps.name} would fall on {_d(day)}: {reason}"
        away = problem.away(patient, ps.step, first, ps.duration)
        if away:
            return away if offset == 0 else f"{ps.name} would fall on {_d(first)}: {away}"
    for ps, offset in group:
        first = start + timedelta(days=offset)
        for resource, cell, amount in step_cells(ps, first):
            resource_id = resource.id
            capacity = site.capacity_on(resource, cell)
            holders = [p for p in usage.get((resource_id, cell), []) if p != patient.id]
            if len(holders) + amount > capacity:
                cause = site.capacity_reason(resource, cell)
                label = resource.say_cell(cell)
                names = ", ".join(sorted(set(holders))) or "nobody"
                return f"{resource_id} full {label} ({len(holders)} of {capacity}: {names})" + (
                    f", {cause}" if cause else ""
                )
    return "free, but a later step's window or a shorter wait for the infusion placed it later"
