"""What a patient's frozen bookings hold fixed: patients in flight are never dropped.

A frozen booking (done, or fixed by a coordinator) can tie other steps to it.
``hold`` works out, for one patient:

* **derived**: a step tied to a frozen step by a fixed lag (``min == max``) whose
  day therefore falls before the planning horizon starts (it is already under
  way: the stay that starts on the infusion day, the shipment on the collection
  day, the high-risk window) is frozen with it. Without this the step would
  need a day before the horizon, the patient would be reported unschedulable
  and the load of the stay and the ICU back-up place would be given away.
* **refused**: a step tied to a frozen step by a range whose every day falls
  before the horizon starts (a product in QC after a frozen manufacture, say):
  the input must say when it happened. ``parse_cohort`` refuses it, naming the
  patient and the step.
* **repeated**: a given conditioning marked ``repeat_if_infusion_slips`` whose
  infusion can no longer fall inside its window (every day of it has passed,
  or is closed or blacked out for the patient) is set aside: lymphodepletion is
  given again, so the plan books a new conditioning instead of an infusion
  outside the label's window.

The checker (``pathway.rules``), the solver (``solver.instance``) and the
explanations read a patient's frozen steps only through ``Problem.held``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pathway.catalogue import Lag, Step, StepKind, Template
from pathway.dates import say_day


_day = say_day


@dataclass(frozen=True)
class Held:
    """One patient's frozen steps as the plan must keep them."""

    frozen: dict[str, date]  # step -> first day: given (minus repeated) and derived
    derived: dict[str, str] = field(default_factory=dict)  # step -> why it is held with another
    repeated: dict[str, str] = field(default_factory=dict)  # step -> why its given booking is given again
    refused: dict[str, str] = field(default_factory=dict)  # step -> why the input cannot be planned

    def is_frozen(self, step: str) -> bool:
        return step in self.frozen


def _anchor(lag: Lag, first_day: date, duration: int) -> date:
    return first_day + timedelta(days=duration if lag.anchor == "end" else 0)


def _window_after(lag: Lag, other_first: date, other_duration: int) -> tuple[date, date | None]:
    """The first days ``this`` step may start on, given the frozen step it lags after."""
    anchor = _anchor(lag, other_first, other_duration)
    return anchor + timedelta(days=lag.min), None if lag.max is None else anchor + timedelta(days=lag.max)


def _window_before(lag: Lag, this_first: date, other_duration: int) -> tuple[date | None, date]:
    """The first days the ``after`` step may start on, given the frozen step that lags after it."""
    shift = other_duration if lag.anchor == "end" else 0
    latest = this_first - timedelta(days=lag.min + shift)
    earliest = None if lag.max is None else this_first - timedelta(days=lag.max + shift)
    return earliest, latest


def hold(
    template: Template,
    durations: dict[str, int],
    given: dict[str, date],
    today: date,
    earliest: date,
    infusion_day_possible: Callable[[Step, date], bool],
) -> Held:
    """The patient's frozen steps, in flight included (see the module docstring).

    ``today``: the first day that is not history (the horizon's start); a step
    held by a frozen one to a day before it is under way. ``earliest``: the
    patient's first allowed day (approval, earliest start, horizon start), the
    first day an infusion after a given conditioning could still be on.
    ``infusion_day_possible(step, day)``: the patient's own rules allow ``step``
    (an infusion) to start on ``day`` (calendar, blackouts, presence after it).
    """
    frozen = dict(given)
    repeated: dict[str, str] = {}
    steps = {s.name: s for s in template.steps}

    for step in template.steps:
        if step.kind != StepKind.infusion or step.name in frozen:
            continue
        for lag in step.lags:
            conditioning = steps[lag.after]
            if lag.rule != "infusion_window" or not conditioning.repeat_if_infusion_slips or lag.after not in frozen:
                continue
            low, high = _window_after(lag, frozen[lag.after], durations[lag.after])
            days = [low + timedelta(days=i) for i in range(((high or low) - low).days + 1)]
            if any(d >= earliest and infusion_day_possible(step, d) for d in days):
                continue
            repeated[lag.after] = (
                f"{lag.after.replace('_', ' ')} given from {_day(frozen[lag.after])} is repeated: "
                f"{step.name.replace('_', ' ')} can no longer fall between {_day(low)} and {_day(high or low)}"
                + (f" ({lag.note})" if lag.note else "")
            )
            del frozen[lag.after]

    derived: dict[str, str] = {}
    refused: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for step in template.steps:
            for lag in step.lags:
                before, after = lag.after, step.name
                if (before in frozen) == (after in frozen):
                    continue
                if before in frozen:
                    target, other = after, before
                    low, high = _window_after(lag, frozen[before], durations[before])
                else:
                    target, other = before, after
                    low, high = _window_before(lag, frozen[after], durations[before])
                if target in refused or high is None or high >= today:
                    continue
                if low == high:
                    frozen[target] = low
                    derived[target] = f"held with {other.replace('_', ' ')} on {_day(frozen[other])}: already under way"
                    changed = True
                else:
                    refused[target] = (
                        f"{target.replace('_', ' ')} is tied to {other.replace('_', ' ')} on {_day(frozen[other])}, "
                        f"so it started {'by' if low is None else f'between {_day(low)} and'} {_day(high)}, before "
                        f"{_day(today)}: record it as frozen too (the day it started)"
                    )
    return Held(frozen, derived, repeated, refused)
