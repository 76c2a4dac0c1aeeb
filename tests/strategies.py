"""Hypothesis strategies the solver tests share: generated cohorts on the default catalogue."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from cohorts.generator import generate_cohort
from pathway.catalogue import load_catalogue
from pathway.cohort import Problem, parse_cohort

TEMPLATES = sorted(t.id for t in load_catalogue().templates)


def cohorts(max_size: int) -> st.SearchStrategy[Problem]:
    """Cohorts of 1..``max_size`` patients from a random mix of templates, starting any day of 2026-2028."""
    return st.builds(
        lambda seed, size, start, mix: parse_cohort(
            generate_cohort(name="prop", seed=seed, patients=size, horizon_start=start, horizon_days=150, mix=mix)
        ),
        seed=st.integers(0, 10**6),
        size=st.integers(1, max_size),
        start=st.dates(date(2026, 1, 1), date(2028, 12, 31)),
        mix=st.dictionaries(st.sampled_from(TEMPLATES), st.integers(1, 5), min_size=1, max_size=6),
    )
