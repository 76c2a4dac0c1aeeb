"""The cost of one patient's schedule: one definition, used by every method.

cost = w_a * urgency * (infusion - approval)
     + w_v * (infusion - first collection)          [vein-to-vein]
     + w_c * (infusion - conditioning start)        [tie-break]
     + w_l * max(0, infusion - target)              [lateness]
     + w_g * max(0, infusion - collection - 2)      [fresh graft older than its preferred 48 h]
     + sum_k r_k * max(0, infusion - free - d_k)    [fair waiting: convex delay beyond the capacity-free day]
     + sum_s per_day_s * |start_s - was_s| + per_move_s * [start_s != was_s]
                                                    [the nightly re-solve only: moving a current booking]

It is linear in the step start days plus "hinge" terms ``w * max(0, a - b - k)``,
so the CP-SAT model, the greedy baseline and the plan evaluator build it from
the same ``CostTerms``. The move terms (``StepMove``) are a cost per step and
start day, which the column generation's pricing adds to each step's own cost;
the CP-SAT model states them itself (``CohortModelBuilder.add_move_penalty``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pathway.site import ObjectiveWeights
from solver.instance import Instance, PatientSpec


@dataclass(frozen=True)
class Hinge:
    """``weight * max(0, start[later] - start[earlier] - allowance)``.

    With no ``earlier`` the excess is ``start[later] - allowance`` (lateness against a target day).
    """

    weight: int
    later: int
    earlier: int | None
    allowance: int
    name: str

    def excess(self, starts: list[int]) -> int:
        base = starts[self.earlier] if self.earlier is not None else 0
        return max(0, starts[self.later] - base - self.allowance)


@dataclass(frozen=True)
class MoveCost:
    """What moving one booking costs in the objective: per day moved, and once if it moves at all."""

    per_day: int = 0
    per_move: int = 0


@dataclass(frozen=True)
class StepMove:
    """Step ``step`` is booked on day ``was`` in the plan people know: starting it on another day costs
    ``cost`` (``Site.stability``, as the nightly re-solve weighs it)."""

    step: int
    was: int
    cost: MoveCost

    def at(self, day):
        """The cost of starting the step on ``day`` (an int, or an array of days)."""
        shift = abs(day - self.was)
        return self.cost.per_day * shift + self.cost.per_move * (shift != 0)


@dataclass(frozen=True)
class CostTerms:
    coefficients: dict[int, int]  # step index -> coefficient on its start day
    constant: int
    infusion: int
    hinges: tuple[Hinge, ...] = ()
    moves: tuple[StepMove, ...] = ()  # the nightly re-solve's move penalty, per booked step

    def evaluate(self, starts: list[int]) -> int:
        linear = self.constant + sum(c * starts[i] for i, c in self.coefficients.items())
        moved = sum(int(m.at(starts[m.step])) for m in self.moves)
        return linear + sum(h.weight * h.excess(starts) for h in self.hinges) + moved

    def dropping(self) -> int:
        """What leaving the patient out costs on top of the unscheduled penalty: each booking moves."""
        return sum(m.cost.per_move for m in self.moves)


def cost_terms(spec: PatientSpec, weights: ObjectiveWeights) -> CostTerms:
    coefficients: dict[int, int] = {}

    def add(index: int, c: int) -> None:
        coefficients[index] = coefficients.get(index, 0) + c

    w_a = weights.approval_to_infusion * spec.urgency_weight
    add(spec.infusion, w_a)
    constant = -w_a * spec.approval
    if spec.collection is not None and weights.vein_to_vein:
        add(spec.infusion, weights.vein_to_vein)
        add(spec.collection, -weights.vein_to_vein)
    if spec.conditioning is not None and weights.conditioning_to_infusion:
        add(spec.infusion, weights.conditioning_to_infusion)
        add(spec.conditioning, -weights.conditioning_to_infusion)
    hinges = []
    if spec.target is not None and weights.lateness:
        hinges.append(Hinge(weights.lateness, spec.infusion, None, spec.target, "late"))
    preferred = spec.graft_preferred_age_days
    if preferred is not None and spec.collection is not None and weights.graft_over_preferred_age:
        hinges.append(Hinge(weights.graft_over_preferred_age, spec.infusion, spec.collection, preferred, "graft_age"))
    if spec.free_infusion is not None:  # fair waiting: convex cost of delay beyond the capacity-free date
        rate = 0
        for tier in weights.waiting.delay_rates:
            if tier.per_day > rate:
                allowance = spec.free_infusion + tier.beyond_days
                hinges.append(Hinge(tier.per_day - rate, spec.infusion, None, allowance, f"delay>{tier.beyond_days}"))
                rate = tier.per_day
    coefficients = {i: c for i, c in coefficients.items() if c}
    return CostTerms(coefficients, constant, spec.infusion, tuple(hinges))


def hinge_bound(hinge: Hinge, domains: list[list[int]]) -> int:
    """The largest excess ``hinge`` can reach over ``domains`` (start days per step)."""
    low = domains[hinge.earlier][0] if hinge.earlier is not None and domains[hinge.earlier] else 0
    high = domains[hinge.later][-1] if domains[hinge.later] else 0
    return max(0, high - low - hinge.allowance)


def unscheduled_penalty(instance: Instance) -> int:
    """Cost of leaving one patient out: more than every patient's worst schedule together.

    This makes the number of scheduled patients the first priority.
    """
    weights = instance.problem.site.objective
    worst_urgency = max(weights.urgency_weights.values())
    span = instance.last_day - min((p.approval for p in instance.patients), default=0) + 1
    per_patient = span * (
        weights.approval_to_infusion * worst_urgency
        + weights.vein_to_vein
        + weights.conditioning_to_infusion
        + weights.lateness
        + weights.graft_over_preferred_age
        + max((tier.per_day for tier in weights.waiting.delay_rates), default=0)
    )
    return per_patient * max(1, len(instance.patients)) + 1
