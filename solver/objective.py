"""The cost of one patient's schedule: one definition, used by every method.

cost = w_a * urgency * (infusion - approval)
     + w_v * (infusion - first collection)          [vein-to-vein]
     + w_c * (infusion - conditioning start)        [tie-break]
     + w_l * max(0, infusion - target)              [lateness]

It is linear in the step start days plus one lateness term, so the CP-SAT
model, the greedy baseline and the plan evaluator build it from the same
``CostTerms``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathway.site import ObjectiveWeights
from solver.instance import Instance, PatientSpec


@dataclass(frozen=True)
class CostTerms:
    coefficients: dict[int, int]  # step index -> coefficient on its start day
    constant: int
    lateness_weight: int
    target: int | None
    infusion: int

    def evaluate(self, starts: list[int]) -> int:
        linear = self.constant + sum(c * starts[i] for i, c in self.coefficients.items())
        return linear + self.lateness_weight * self.lateness(starts)

    def lateness(self, starts: list[int]) -> int:
        if self.target is None:
            return 0
        return max(0, starts[self.infusion] - self.target)


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
    coefficients = {i: c for i, c in coefficients.items() if c}
    return CostTerms(coefficients, constant, weights.lateness, spec.target, spec.infusion)


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
    )
    return per_patient * max(1, len(instance.patients)) + 1
