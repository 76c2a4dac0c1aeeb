"""Best schedule for one patient on given start-day domains.

Used by the greedy baseline (domains narrowed to the residual capacity left by
earlier patients), by the capacity-free bound (the patient alone on the site)
and by propose. The pathway's steps are linked by lags in both directions; the
dynamic programme of ``solver.pricing`` searches them exactly (no prices: the
patient's own cost only), so every answer is proven optimal.
"""

from __future__ import annotations

from solver.instance import PatientSpec
from solver.objective import CostTerms
from solver.pricing import PatientPricer


def best_single_schedule(spec: PatientSpec, domains: list[list[int]], terms: CostTerms) -> list[int] | None:
    """The start day of every step minimising the patient's cost (exact), or None if none exists."""
    found = PatientPricer(None, spec, terms, domains).best()
    return None if found is None else found[1]
