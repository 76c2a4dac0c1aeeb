"""The catalogue's lags as CP-SAT constraints: one function for every model that places steps.

A lag bounds ``start(step) - anchor(other)``: the anchor is the other step's
first day, or the day after its last day. This is where the solver enforces
STEP_LAG, INFUSION_WINDOW, RELEASE_BEFORE_CONDITIONING and GRAFT_AGE (the
catalogue refuses a template without the release and graft-age lags).
"""

from __future__ import annotations

from solver.instance import PatientSpec
from solver.params import cp_model


def add_lags(model: cp_model.CpModel, spec: PatientSpec, starts: list, enforce=None) -> None:
    """Every lag of ``spec`` on ``starts`` (IntVar or int per step); only if ``enforce`` holds, when given.

    A lag between two frozen steps adds nothing (nothing to decide; the checker still judges it).
    """
    for step in spec.steps:
        for lag in step.lags:
            other = spec.steps[lag.other]
            if step.frozen is not None and other.frozen is not None:
                continue
            offset = starts[step.index] - starts[lag.other] - (other.duration if lag.anchor_end else 0)
            bounds = [model.add(offset >= lag.min)]
            if lag.max is not None:
                bounds.append(model.add(offset <= lag.max))
            if enforce is not None:
                for constraint in bounds:
                    constraint.only_enforce_if(enforce)
