"""Who uses which resource on which day: the load of a set of bookings.

One walk over bookings, used by the rule checker's CAPACITY rule and by the
API's capacity views and confirmation check. Daily resources are counted per
day for the days a step uses them; weekly resources (manufacturer slots) once
per ISO week, keyed by its Monday.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from pathway.cohort import PatientStep, Problem
from pathway.plan import Booking
from pathway.site import Resource, Site


@dataclass(frozen=True)
class Use:
    patient: str
    step: str
    amount: int


@dataclass
class Load:
    """(resource id, day or Monday) -> the uses booked there."""

    resources: dict[str, Resource]
    cells: dict[tuple[str, date], list[Use]]

    def booked(self, resource_id: str, day: date) -> int:
        return sum(u.amount for u in self.cells.get((resource_id, day), ()))

    def overbooked(self, site: Site, cells=None):
        """(resource, day or Monday, booked, capacity, uses) for each cell (of ``cells``, default all,
        in order) where more is booked than the site's capacity that day."""
        for key in sorted(self.cells) if cells is None else sorted(cells):
            resource_id, day = key
            uses = self.cells.get(key, [])
            resource = self.resources[resource_id]
            booked = sum(u.amount for u in uses)
            capacity = site.capacity_on(resource, day)
            if booked > capacity:
                yield resource, day, booked, capacity, uses


def step_cells(step: PatientStep, first_day: date, last_day: date | None = None):
    """(resource, day or Monday, amount) for every resource cell ``step`` uses if it starts on ``first_day``;
    with ``last_day``, on the booking's own days: a resource used throughout the step is used until
    ``last_day`` (a stay cut short stops; a manufacture a late product lengthened goes on), one used for
    its first days only never past ``last_day``."""
    length = None if last_day is None else (last_day - first_day).days + 1
    for resource, amount, days_used in step.resources:
        if resource.weekly:
            yield resource, resource.cell(first_day), amount
            continue
        if length is not None:  # the booking's own days: cut short, or longer than planned (a late product)
            days_used = length if days_used >= step.duration else min(days_used, length)
        for i in range(days_used):
            yield resource, first_day + timedelta(days=i), amount


def resource_load(problem: Problem, bookings: Iterable[Booking]) -> Load:
    """The load of ``bookings`` on their own days (duplicates counted; bookings of unknown patients or
    steps ignored)."""
    steps = {p.id: {ps.name: ps for ps in problem.steps(p)} for p in problem.patients}
    resources: dict[str, Resource] = {}
    cells: dict[tuple[str, date], list[Use]] = defaultdict(list)
    for booking in bookings:
        step = steps.get(booking.patient, {}).get(booking.step)
        if step is None:
            continue
        for resource, day, amount in step_cells(step, booking.first_day, booking.last_day):
            resources[resource.id] = resource
            cells[(resource.id, day)].append(Use(booking.patient, booking.step, amount))
    return Load(resources, cells)
