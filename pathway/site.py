"""A site: its calendars (local policy), its resources and their capacity by date.

Calendars are named day rules that steps refer to (``working_day``,
``infusion_day``...). England & Wales bank holidays come from the maintained
``holidays`` library, never from a list in this repository.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator

from pathway.catalogue import Model
from pathway.dates import IsoDate, say_day

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
Urgency = Literal["routine", "soon", "urgent"]


@lru_cache(maxsize=64)
def _bank_holidays(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    import holidays

    return dict(holidays.country_holidays(country, subdiv=subdivision, years=[year]).items())


class CalendarRule(Model):
    """Which days are open: allowed weekdays, optionally minus bank holidays and their eves."""

    weekdays: tuple[Weekday, ...] = WEEKDAY_NAMES
    exclude_bank_holidays: bool = True
    exclude_day_before_bank_holiday: bool = False
    note: str = ""


class Resource(Model):
    kind: str = Field(min_length=1)
    centre: str | None = Field(default=None, description="None: shared by every centre (e.g. manufacturer slots)")
    period: Literal["day", "week"] = "day"
    capacity: int = Field(ge=0)
    unit: str = ""
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.centre}/{self.kind}" if self.centre else self.kind

    # A resource's capacity is counted per cell: a day, or an ISO week (named by its Monday).
    @property
    def weekly(self) -> bool:
        return self.period == "week"

    def cell(self, day: date) -> date:
        """The cell ``day`` falls in: the day itself, or the Monday of its ISO week."""
        return week_start(day) if self.weekly else day

    def cell_days(self, cell: date) -> tuple[date, date]:
        """The first and last day of ``cell``."""
        return (cell, cell + timedelta(days=6)) if self.weekly else (cell, cell)

    def say_cell(self, cell: date) -> str:
        """'on Mon 04 Jan 2027', or 'in the week of Mon 04 Jan 2027'."""
        return f"in the week of {say_day(cell)}" if self.weekly else f"on {say_day(cell)}"


class CapacityChange(Model):
    """A closure (capacity 0) or a change of capacity for some days."""

    resource: str = Field(min_length=1, description="resource kind")
    centre: str | None = None
    first_day: IsoDate
    last_day: IsoDate
    capacity: int = Field(ge=0)
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> CapacityChange:
        if self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")
        return self


class DelayRate(Model):
    """From ``beyond_days`` of delay on, each further day costs ``per_day`` (a delay is the infusion's
    days after the patient's capacity-free date: what the queue, not their own pathway, costs them)."""

    beyond_days: int = Field(ge=0)
    per_day: int = Field(ge=0)


class WaitingPolicy(Model):
    """Fair waiting: what keeps a sum objective from buying everyone's shorter wait with a few very long ones.

    ``tail_guard`` (column generation and its polisher): no patient waits longer, from approval
    to infusion, than the longest wait first come, first served gives (or their own capacity-free
    wait, if longer), and no more patients wait beyond first come, first served's 90th percentile
    than it has there. ``delay_rates`` (every method, through the objective): convex costs per
    day of delay, the rate rising at each threshold. These are policy weights, not clinical numbers.
    """

    tail_guard: bool = True
    delay_rates: tuple[DelayRate, ...] = (DelayRate(beyond_days=14, per_day=10), DelayRate(beyond_days=28, per_day=30))

    @model_validator(mode="after")
    def _convex(self) -> WaitingPolicy:
        pairs = list(zip(self.delay_rates, self.delay_rates[1:], strict=False))
        if any(b.beyond_days <= a.beyond_days or b.per_day < a.per_day for a, b in pairs):
            raise ValueError("delay_rates must rise: each threshold later than the one before, its rate no lower")
        return self


class ObjectiveWeights(Model):
    """What a good plan means, as weights per day (shared/domain.md, "What a good plan means").

    Defaults follow the domain's order of importance: approval-to-infusion time
    (times the patient's urgency weight), then vein-to-vein time (bridging
    burden), then days late against a target date; conditioning-to-infusion
    days only break ties (lymphodepletion as close to the infusion as allowed).
    A patient left unscheduled always costs more than any schedule.
    """

    approval_to_infusion: int = Field(default=10, ge=0)
    vein_to_vein: int = Field(default=3, ge=0)
    lateness: int = Field(default=2, ge=0)
    conditioning_to_infusion: int = Field(default=1, ge=0)
    graft_over_preferred_age: int = Field(
        default=50,
        ge=0,
        description="per day a fresh graft is older than its template's preferred age (48 h) at infusion",
    )
    urgency_weights: dict[Urgency, int] = Field(default_factory=lambda: {"routine": 1, "soon": 2, "urgent": 4})
    waiting: WaitingPolicy = Field(default_factory=WaitingPolicy)

    @model_validator(mode="after")
    def _all_urgencies(self) -> ObjectiveWeights:
        missing = {"routine", "soon", "urgent"} - set(self.urgency_weights)
        if missing:
            raise ValueError(f"urgency_weights lacks {sorted(missing)}")
        if any(w < 1 for w in self.urgency_weights.values()):
            raise ValueError("urgency_weights must be >= 1")
        return self


class StabilityWeights(Model):
    """What moving a booking that people already know costs a re-plan, in the objective's units.

    Moving one booking costs ``per_booking`` plus ``per_day`` for each day it
    moves, times ``confirmed_factor`` if it was confirmed to the patient and
    times ``soon_factor`` if it starts within ``soon_days`` of the re-plan.
    These are policy weights, not clinical numbers (shared/domain.md gives
    none): with the defaults a routine patient's planned pathway moves for a
    gain of about a week, a confirmed one almost never for gain alone.
    """

    per_booking: int = Field(default=5, ge=0)
    per_day: int = Field(default=1, ge=0)
    confirmed_factor: int = Field(default=3, ge=1)
    soon_days: int = Field(default=14, ge=0)
    soon_factor: int = Field(default=2, ge=1)

    def factor(self, confirmed: bool, days_ahead: int) -> int:
        return (self.confirmed_factor if confirmed else 1) * (self.soon_factor if days_ahead < self.soon_days else 1)


@lru_cache(maxsize=64)
def _changes_by_resource(
    changes: tuple[CapacityChange, ...],
) -> dict[tuple[str, str | None], tuple[CapacityChange, ...]]:
    """The capacity changes of each (resource kind, centre), in the order listed. Keyed by the changes
    themselves, not cached on a site: a copy of a site with other changes (``model_copy``) would
    carry a cached value over."""
    out: dict[tuple[str, str | None], list[CapacityChange]] = {}
    for change in changes:
        out.setdefault((change.resource, change.centre), []).append(change)
    return {key: tuple(listed) for key, listed in out.items()}


class Site(Model):
    name: str
    country: str = "GB"
    subdivision: str | None = "ENG"
    centres: tuple[str, ...] = Field(min_length=1)
    calendars: dict[str, CalendarRule]
    resources: tuple[Resource, ...]
    capacity_changes: tuple[CapacityChange, ...] = ()
    objective: ObjectiveWeights = ObjectiveWeights()
    stability: StabilityWeights = StabilityWeights()

    @model_validator(mode="after")
    def _references(self) -> Site:
        ids = [r.id for r in self.resources]
        for i, r in enumerate(self.resources):
            if ids.count(r.id) > 1:
                raise ValueError(f"resources[{i}]: resource {r.id!r} is defined twice")
            if r.centre is not None and r.centre not in self.centres:
                raise ValueError(f"resources[{i}]: centre {r.centre!r} is not one of {list(self.centres)}")
        for i, change in enumerate(self.capacity_changes):
            if self.exact_resource(change.resource, change.centre) is None:
                raise ValueError(f"capacity_changes[{i}]: {self.no_such_resource(change.resource, change.centre)}")
        return self

    def exact_resource(self, kind: str, centre: str | None) -> Resource | None:
        """The resource of this kind defined for exactly this centre (None: a shared one)."""
        return next((r for r in self.resources if r.kind == kind and r.centre == centre), None)

    def no_such_resource(self, kind: str, centre: str | None) -> str:
        at = f"centre {centre!r}" if centre else "site level (shared)"
        if self.exact_resource(kind, None) is not None and centre:
            return f"{kind!r} is shared by every centre: give no centre for it"
        known = sorted({r.kind for r in self.resources})
        return f"no resource {kind!r} at {at} (known: {', '.join(known)})"

    # -- calendars -------------------------------------------------------
    def bank_holiday(self, day: date) -> str | None:
        return _bank_holidays(self.country, self.subdivision, day.year).get(day)

    def is_open(self, calendar: str, day: date) -> bool:
        rule = self.calendars[calendar]
        if WEEKDAY_NAMES[day.weekday()] not in rule.weekdays:
            return False
        if rule.exclude_bank_holidays and self.bank_holiday(day):
            return False
        if rule.exclude_day_before_bank_holiday and self.bank_holiday(day + timedelta(days=1)):
            return False
        return True

    def open_days(self, calendar: str, first: date, days: int) -> list[bool]:
        """``is_open`` for each of ``days`` days from ``first``."""
        return [self.is_open(calendar, first + timedelta(days=d)) for d in range(days)]

    def closed_reason(self, calendar: str, day: date) -> str:
        """Why ``day`` is not a ``calendar`` day, without the date ('' if it is open)."""
        rule = self.calendars[calendar]
        label = calendar.replace("_", " ")
        if WEEKDAY_NAMES[day.weekday()] not in rule.weekdays:
            article = "an" if label[:1] in "aeiou" else "a"
            return f"not {article} {label} ({'/'.join(rule.weekdays)} only)"
        holiday = self.bank_holiday(day)
        if rule.exclude_bank_holidays and holiday:
            return f"bank holiday ({holiday}), no {label}"
        eve = self.bank_holiday(day + timedelta(days=1))
        if rule.exclude_day_before_bank_holiday and eve:
            return f"day before a bank holiday ({eve}), no {label}"
        return ""

    # -- resources -------------------------------------------------------
    def find_resource(self, kind: str, centre: str | None) -> Resource | None:
        """The centre's own resource of this kind, else a shared one."""
        shared = None
        for r in self.resources:
            if r.kind == kind and r.centre == centre:
                return r
            if r.kind == kind and r.centre is None:
                shared = r
        return shared

    def _changes_on(self, resource: Resource, day: date):
        """Capacity changes that apply on ``day`` (weekly resources: anywhere in its ISO week)."""
        changes = _changes_by_resource(self.capacity_changes).get((resource.kind, resource.centre), ())
        if not changes:  # most resources have none: no need to work out the cell's days
            return
        first, last = resource.cell_days(resource.cell(day))
        for change in changes:
            if change.first_day <= last and first <= change.last_day:
                yield change

    def capacity_on(self, resource: Resource, day: date) -> int:
        """Capacity of ``resource`` on ``day`` (weekly resources: for the ISO week of ``day``).

        When several changes apply, the last one listed wins.
        """
        capacity = resource.capacity
        for change in self._changes_on(resource, day):
            capacity = change.capacity
        return capacity

    def capacity_days(self, resource: Resource, first: date, days: int) -> list[int]:
        """``capacity_on`` for each of ``days`` days from ``first`` (a daily resource): each change
        overwrites its days in the order listed, so the last one listed wins."""
        if resource.weekly:
            raise ValueError(f"{resource.id} is counted per week, not per day")
        out = [resource.capacity] * days
        for change in _changes_by_resource(self.capacity_changes).get((resource.kind, resource.centre), ()):
            lo = max(0, (change.first_day - first).days)
            hi = min(days, (change.last_day - first).days + 1)
            if lo < hi:
                out[lo:hi] = [change.capacity] * (hi - lo)
        return out

    def capacity_reason(self, resource: Resource, day: date) -> str:
        reason = ""
        for change in self._changes_on(resource, day):
            reason = change.reason
        return reason


def week_start(day: date) -> date:
    """Monday of the ISO week containing ``day``."""
    return day - timedelta(days=day.weekday())
