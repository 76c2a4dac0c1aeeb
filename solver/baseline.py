"""Baselines on the same Instance as the CP-SAT model.

* capacity-free: each patient alone on the site (calendars, closures and their
  own constraints still apply, other patients do not). Its cost is a lower
  bound for any plan, and its infusion date is what a coordinator would get
  with the site to themselves.
* greedy: first come, first served; each patient in turn gets the earliest
  (cheapest) schedule that fits in the capacity left by those before. This is
  what coordinators do by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.instance import Instance, PatientSpec, resource_cells
from solver.objective import cost_terms
from solver.single import best_single_schedule


@dataclass
class Schedule:
    """Start day of every step of one patient, and its cost."""

    starts: list[int]
    cost: int
    optimal: bool = True  # proven best for this patient on its domains (a valid lower bound)


def capacity_free(instance: Instance) -> dict[str, Schedule | None]:
    weights = instance.problem.site.objective
    out: dict[str, Schedule | None] = {}
    for spec in instance.patients:
        terms = cost_terms(spec, weights)
        found = best_single_schedule(spec, [s.starts for s in spec.steps], terms)
        out[spec.id] = Schedule(found[0], terms.evaluate(found[0]), found[1]) if found is not None else None
    return out


class Residual:
    """Capacity left per resource and day (or week), as patients are booked."""

    def __init__(self, instance: Instance):
        self.instance = instance
        self.left = {rid: list(caps) for rid, caps in instance.capacity.items()}

    def _cells(self, spec: PatientSpec, step_index: int, start: int):
        for rid, cell, amount in resource_cells(self.instance, spec.steps[step_index], start):
            yield self.left[rid], cell, amount

    def fits(self, spec: PatientSpec, step_index: int, start: int) -> bool:
        return all(caps[i] >= amount for caps, i, amount in self._cells(spec, step_index, start))

    def book(self, spec: PatientSpec, step_index: int, start: int) -> None:
        for caps, i, amount in self._cells(spec, step_index, start):
            caps[i] -= amount


def residual_after_frozen(instance: Instance) -> Residual:
    """Capacity left once every frozen booking (scheduled patient or not) has taken its share.

    Frozen bookings are facts: if they already overfill a day, that day has
    nothing left (never a negative capacity); the checker reports the overfill.
    """
    residual = Residual(instance)
    for spec in instance.patients:
        for step in spec.steps:
            if step.frozen is not None:
                residual.book(spec, step.index, step.frozen)
    for caps in residual.left.values():
        caps[:] = [max(0, c) for c in caps]
    return residual


def greedy(instance: Instance, excluded: set[str] = frozenset()) -> dict[str, Schedule | None]:
    """First come (approval date), first served; urgent first on the same day."""
    weights = instance.problem.site.objective
    residual = residual_after_frozen(instance)
    order = sorted(instance.patients, key=lambda p: (p.approval, -p.urgency_weight, p.id))
    out: dict[str, Schedule | None] = {}
    for spec in order:
        if spec.id in excluded:
            out[spec.id] = None
            continue
        domains = [
            s.starts if s.frozen is not None else [d for d in s.starts if residual.fits(spec, s.index, d)]
            for s in spec.steps
        ]
        terms = cost_terms(spec, weights)
        found = best_single_schedule(spec, domains, terms)
        if found is None:
            out[spec.id] = None
            continue
        starts = found[0]
        for step in spec.steps:
            if step.frozen is None:
                residual.book(spec, step.index, starts[step.index])
        out[spec.id] = Schedule(starts, terms.evaluate(starts))
    return out
