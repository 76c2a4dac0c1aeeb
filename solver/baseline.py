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

import numpy as np

from solver.instance import Instance, PatientSpec, resource_cells
from solver.objective import cost_terms
from solver.pricing import window_min
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

    def allowed(self, spec: PatientSpec, step_index: int) -> list[int]:
        """The step's allowed start days on which it fits in the capacity left, every day at once."""
        step = spec.steps[step_index]
        days = np.asarray(step.starts, dtype=int)
        ok = np.ones(len(days), dtype=bool)
        for use in step.uses:
            left = np.asarray(self.left[use.resource], dtype=float)
            if use.weekly:
                weeks = (days + self.instance.week_offset) // 7
                inside = (weeks >= 0) & (weeks < len(left))
                ok &= ~inside | (left[np.clip(weeks, 0, len(left) - 1)] >= use.amount)
            else:
                # the least left over [day, day + use.days); cells off the day axis are not counted
                least = window_min(left[None, :], 0, use.days - 1)[0]
                ahead = np.minimum.accumulate(left)  # a step starting before day 0: its cells from day 0 on
                last = np.clip(days + use.days - 1, 0, len(left) - 1)
                least_here = np.where(days < 0, ahead[last], least[np.clip(days, 0, len(left) - 1)])
                counted = (days + use.days > 0) & (days < len(left))
                ok &= ~counted | (least_here >= use.amount)
        return days[ok].tolist()

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
        domains = [s.starts if s.frozen is not None else residual.allowed(spec, s.index) for s in spec.steps]
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
