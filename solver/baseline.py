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
from solver.pricing import enumerated_steps, window_min
from solver.single import best_single_schedule


@dataclass
class Schedule:
    """Start day of every step of one patient, and its cost."""

    starts: list[int]
    cost: int


def capacity_free(instance: Instance) -> dict[str, Schedule | None]:
    weights = instance.problem.site.objective
    out: dict[str, Schedule | None] = {}
    for spec in instance.patients:
        terms = cost_terms(spec, weights)
        found = best_single_schedule(spec, [s.starts for s in spec.steps], terms)
        out[spec.id] = Schedule(found, terms.evaluate(found)) if found is not None else None
    return out


class Residual:
    """Capacity left per resource and day (or week), as patients are booked.

    ``left`` holds lists (what the CP-SAT model and the master read); each resource's numpy copy and
    its sliding-window minima, made when a domain is filtered, are kept up to date by ``book``.
    """

    def __init__(self, instance: Instance):
        self.instance = instance
        self.left = {rid: list(caps) for rid, caps in instance.capacity.items()}
        self._arrays: dict[str, np.ndarray] = {}
        self._least: dict[tuple[str, int], np.ndarray] = {}  # (resource, days) -> least left from each day on

    def _array(self, rid: str) -> np.ndarray:
        if rid not in self._arrays:
            self._arrays[rid] = np.asarray(self.left[rid], dtype=float)
        return self._arrays[rid]

    def _least_over(self, rid: str, days: int) -> np.ndarray:
        """The least left over ``[day, day + days)`` for each day of the axis (cells off it not counted)."""
        key = (rid, days)
        if key not in self._least:
            self._least[key] = window_min(self._array(rid)[None, :], 0, days - 1)[0]
        return self._least[key]

    def allowed(self, spec: PatientSpec, step_index: int) -> list[int]:
        """The step's allowed start days on which it fits in the capacity left, every day at once."""
        step = spec.steps[step_index]
        days = np.asarray(step.starts, dtype=int)
        ok = np.ones(len(days), dtype=bool)
        for use in step.uses:
            left = self._array(use.resource)
            if use.weekly:
                weeks = (days + self.instance.week_offset) // 7
                inside = (weeks >= 0) & (weeks < len(left))
                ok &= ~inside | (left[np.clip(weeks, 0, len(left) - 1)] >= use.amount)
            else:
                # the least left over [day, day + use.days); cells off the day axis are not counted
                least = self._least_over(use.resource, use.days)
                ahead = np.minimum.accumulate(left)  # a step starting before day 0: its cells from day 0 on
                last = np.clip(days + use.days - 1, 0, len(left) - 1)
                least_here = np.where(days < 0, ahead[last], least[np.clip(days, 0, len(left) - 1)])
                counted = (days + use.days > 0) & (days < len(left))
                ok &= ~counted | (least_here >= use.amount)
        return days[ok].tolist()

    def domains(self, spec: PatientSpec) -> list[list[int]]:
        """Each step's allowed start days that fit in the capacity left (a frozen step: its day)."""
        return [step.starts if step.frozen is not None else self.allowed(spec, step.index) for step in spec.steps]

    def fits(self, spec: PatientSpec, starts: list[int]) -> bool:
        """Whether every step not frozen fits in the capacity left on its day in ``starts`` (the test
        ``allowed`` makes, for one day)."""
        return all(
            self.left[rid][cell] >= amount
            for step in spec.steps
            if step.frozen is None
            for rid, cell, amount in resource_cells(self.instance, step, starts[step.index])
        )

    def book(self, spec: PatientSpec, step_index: int, start: int) -> None:
        touched = set()
        for rid, cell, amount in resource_cells(self.instance, spec.steps[step_index], start):
            self.left[rid][cell] -= amount
            if rid in self._arrays:
                self._arrays[rid][cell] -= amount
                touched.add(rid)
        for key in [key for key in self._least if key[0] in touched]:
            del self._least[key]

    def refresh(self) -> None:
        """Forget the numpy copies (after ``left`` was changed other than by ``book``)."""
        self._arrays.clear()
        self._least.clear()


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
    residual.refresh()
    return residual


def greedy(
    instance: Instance, excluded: set[str] = frozenset(), alone: dict[str, Schedule | None] | None = None
) -> dict[str, Schedule | None]:
    """First come (approval date), first served; urgent first on the same day.

    ``alone``: the capacity-free schedules (``capacity_free``) of the same instance. A patient whose
    capacity-free schedule fits in the capacity left gets it without a search: narrowing the domains
    and adding the delay costs (nought on that schedule) cannot make another schedule cheaper, and
    the dynamic programme breaks ties the same way on both, as long as it enumerates the same steps
    (with a cycle in the lag graph, which ones depends on the domains' sizes).
    """
    weights = instance.problem.site.objective
    residual = residual_after_frozen(instance)
    order = sorted(instance.patients, key=lambda p: (p.approval, -p.urgency_weight, p.id))
    out: dict[str, Schedule | None] = {}
    for spec in order:
        if spec.id in excluded:
            out[spec.id] = None
            continue
        terms = cost_terms(spec, weights)
        free = alone.get(spec.id) if alone is not None else None
        if free is not None and residual.fits(spec, free.starts):
            narrowed = None
            enumerated = enumerated_steps(spec, terms, [s.starts for s in spec.steps])
            if enumerated:
                narrowed = residual.domains(spec)
            if not enumerated or enumerated == enumerated_steps(spec, terms, narrowed):
                starts = free.starts
            else:
                starts = best_single_schedule(spec, narrowed, terms)  # the capacity-free schedule fits
        else:
            starts = best_single_schedule(spec, residual.domains(spec), terms)
            if starts is None:
                out[spec.id] = None
                continue
        for step in spec.steps:
            if step.frozen is None:
                residual.book(spec, step.index, starts[step.index])
        out[spec.id] = Schedule(starts, terms.evaluate(starts))
    return out
