"""What a patient's frozen bookings hold fixed: patients in flight are never dropped.

A frozen booking (done, or fixed by a coordinator) can tie other steps to it.
``hold`` works out, for one patient:

* **derived**: a step tied by a fixed lag (``min == max``) to a frozen step that
  has started (before the horizon), or whose one legal day is itself before
  the horizon, is frozen with it: the stay that starts on the infusion day, the
  high-risk window, the shipment on the collection day. Without this the step
  would need a day before the horizon, the patient would be reported
  unschedulable and the load of the stay and the ICU back-up place would be
  given away. A step tied to one fixed only ahead of time (a booking in the
  freeze window) is left to the solver: if a closure makes it impossible the
  patient is reported, not booked into the closure.
* **refused**: a step tied to a frozen step by a range whose every day falls
  before the horizon starts (a product in QC after a frozen manufacture, say):
  the input must say when it happened. ``parse_cohort`` refuses it, naming the
  patient and the step.
* **repeated**: a conditioning given before the horizon (``repeat_if_infusion_slips``)
  whose infusion can no longer fall inside its window (every day of it has
  passed, or is closed or blacked out for the infusion itself) is set aside:
  lymphodepletion is given again, so the plan books a new conditioning instead
  of an infusion outside the label's window. A later absence (the presence
  needed after the infusion) never triggers it: that is the coordinator's call.

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
    infusion_ruled_out: Callable[[Step, date], str | None],
) -> Held:
    """The patient's frozen steps, in flight included (see the module docstring).

    ``today``: the first day that is not history (the horizon's start).
    ``earliest``: the patient's first allowed day (approval, earliest start,
    horizon start), the first day an infusion after a given conditioning could
    still be on. ``infusion_ruled_out(step, day)``: why the patient cannot be
    infused on ``day`` itself (the calendar, a blackout), or None.
    """
    frozen = dict(given)

    def under_way(step: str) -> bool:
        """Started before today (a fact), as opposed to fixed ahead by a coordinator or the freeze window."""
        return frozen[step] < today

    repeated = _repeated_conditioning(template, durations, frozen, today, earliest, infusion_ruled_out)
    for step in repeated:
        del frozen[step]

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
                if target in refused or target in repeated or high is None:
                    continue
                if low == high and (low < today or under_way(other)):
                    # One legal day, and the step it is tied to has happened: it is as fixed as that one.
                    frozen[target] = low
                    when = (
                        "already under way" if low < today else f"tied to it, and {other.replace('_', ' ')} has started"
                    )
                    derived[target] = f"held with {other.replace('_', ' ')} on {_day(frozen[other])}: {when}"
                    changed = True
                elif high < today:
                    refused[target] = (
                        f"{target.replace('_', ' ')} is tied to {other.replace('_', ' ')} on {_day(frozen[other])}, "
                        f"so it started {'by' if low is None else f'between {_day(low)} and'} {_day(high)}, before "
                        f"{_day(today)}: record it as frozen too (the day it started)"
                    )
    return Held(frozen, derived, repeated, refused)


def _repeated_conditioning(
    template: Template,
    durations: dict[str, int],
    frozen: dict[str, date],
    today: date,
    earliest: date,
    infusion_ruled_out: Callable[[Step, date], str | None],
) -> dict[str, str]:
    """Given conditioning (``repeat_if_infusion_slips``, started before ``today``) whose infusion can no
    longer fall inside its window: step -> why it is given again."""
    steps = {s.name: s for s in template.steps}
    repeated: dict[str, str] = {}
    for step in template.steps:
        if step.kind != StepKind.infusion or step.name in frozen:
            continue
        for lag in step.lags:
            conditioning = steps[lag.after]
            if (
                lag.rule != "infusion_window"
                or not conditioning.repeat_if_infusion_slips
                or lag.after not in frozen
                or frozen[lag.after] >= today  # booked, not given: nothing to repeat
            ):
                continue
            low, high = _window_after(lag, frozen[lag.after], durations[lag.after])
            high = high or low
            left = [low + timedelta(days=i) for i in range((high - low).days + 1)]
            left = [d for d in left if d >= earliest]
            infusion = f"the {step.name.replace('_', ' ')}'s window"
            if not left:
                why = f"{infusion} ran from {_day(low)} to {_day(high)} and has passed"
            else:
                ruled_out = [infusion_ruled_out(step, d) for d in left]
                if any(r is None for r in ruled_out):
                    continue
                reasons = "; ".join(dict.fromkeys(r for r in ruled_out if r))
                why = f"every day left in {infusion} ({_day(left[0])} .. {_day(high)}) is ruled out: {reasons}"
            repeated[lag.after] = (
                f"{lag.after.replace('_', ' ')} given from {_day(frozen[lag.after])} is given again: {why}"
                + (f" ({lag.note})" if lag.note else "")
            )
    return repeated
