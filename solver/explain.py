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
from pathway.plan import Plan
from pathway.site import week_start


def _d(day: date) -> str:
    return f"{day:%a %d %b %Y}"


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
    held: dict[tuple[str, date], list[str]] = defaultdict(list)
    patients = {p.id: p for p in problem.patients}
    for booking in plan.bookings:
        patient = patients.get(booking.patient)
        if patient is None:
            continue
        for ps in problem.steps(patient):
            if ps.name != booking.step:
                continue
            for key, amount in _cells(ps, booking.first_day):
                held[key].extend([patient.id] * amount)
    return held


def _cells(ps: PatientStep, first_day: date):
    for resource, amount, days in ps.resources:
        if resource.period == "week":
            yield (resource.id, week_start(first_day)), amount
        else:
            for i in range(days):
                yield (resource.id, first_day + timedelta(days=i)), amount


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
    frozen = {f.step: f.first_day for f in patient.frozen}
    steps = []
    for ps in problem.steps(patient):
        booking = booked.get(ps.name)
        if booking is None:
            continue
        explanation = StepExplanation(ps.name, booking.first_day, booking.last_day)
        if ps.name in frozen:
            explanation.reasons.append("frozen: already done or fixed by a coordinator")
        else:
            explanation.reasons.extend(_reasons(problem, patient, ps, booking.first_day, booked, usage))
        steps.append(explanation)
    return PatientExplanation(patient_id, patient.pathway, summary, steps)


def _reasons(problem: Problem, patient: Patient, ps: PatientStep, day: date, booked, usage) -> list[str]:
    bounds: list[tuple[date, str]] = [(problem.earliest_day(patient), "earliest allowed start (approval, earliest start or horizon start)")]
    washout = problem.washout_day(patient, ps.step.kind)
    if washout is not None:
        rule = washout[1]
        bounds.append((washout[0], f"{rule.days} days after the last {rule.agent.replace('_', ' ')} (washout)"))
    for lag in ps.step.lags:
        other = booked.get(lag.after)
        if other is None:
            continue
        anchor = other.first_day if lag.anchor == "start" else other.last_day + timedelta(days=1)
        what = f"{lag.after} {'start' if lag.anchor == 'start' else 'end'}"
        bounds.append((anchor + timedelta(days=lag.min), f"{lag.min:+d} days from {what} ({lag.rule.replace('_', ' ')})"))
    lower, why = max(bounds, key=lambda b: b[0])
    if day == lower:
        return [f"earliest possible: {why}"]
    reasons = [f"could be {_d(lower)} at the earliest: {why}"]
    if day < lower:
        return reasons + ["booked before its earliest day: run `v2v check` on this plan"]
    ruled_out: dict[str, list[date]] = defaultdict(list)
    d = lower
    while d < day:
        ruled_out[_why_not(problem, patient, ps, d, usage)].append(d)
        d += timedelta(days=1)
    for reason, days in ruled_out.items():
        when = _d(days[0]) if len(days) == 1 else f"{len(days)} days from {_d(days[0])} to {_d(days[-1])}"
        reasons.append(f"{when}: {reason}")
    return reasons


def _why_not(problem: Problem, patient: Patient, ps: PatientStep, start: date, usage) -> str:
    site = problem.site
    step = ps.step
    days = [start + timedelta(days=i) for i in range(ps.duration)]
    for day in days if step.calendar_applies_to == "every_day" else days[:1]:
        closed = site.why_closed(step.calendar, day)
        if closed:
            return closed
    if step.patient_present:
        for b in patient.blackouts:
            if any(b.covers(day) for day in days):
                return f"patient unavailable {_d(b.first_day)} .. {_d(b.last_day)}" + (f" ({b.reason})" if b.reason else "")
    for (resource_id, cell), amount in _cells(ps, start):
        resource = next(r for r, _, _ in ps.resources if r.id == resource_id)
        capacity = site.capacity_on(resource, cell)
        holders = [p for p in usage.get((resource_id, cell), []) if p != patient.id]
        if len(holders) + amount > capacity:
            cause = site.capacity_reason(resource, cell)
            label = f"week of {_d(cell)}" if resource.period == "week" else _d(cell)
            names = ", ".join(sorted(set(holders))) or "nobody"
            return f"{resource_id} full on {label}: {len(holders)} of {capacity} taken by {names}" + (
                f" ({cause})" if cause else ""
            )
    return "free, but a later step's window or a shorter wait for the infusion placed it later"
