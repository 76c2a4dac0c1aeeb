"""Benchmark: CP-SAT against the greedy baseline and the capacity-free bound.

    v2v-bench [--quick] [--markdown FILE]      (or: python -m bench)

Prints one row per cohort and method: patients, wall time, status, objective,
gap to the best proven bound, median and p90 approval-to-infusion days, and
the rule checker's verdict. Every plan is checked; a benchmark row with a
violation is a bug, not a result. Timings are for this machine (2 cores);
they are measured here and reported in the README, never asserted in tests.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cohorts import COHORT_FILES as COHORTS
from cohorts.generator import generate_cohort
from pathway.cohort import Problem, load_problem, parse_cohort
from pathway.rules import check_plan
from solver.solve import SolveOptions, solve


@dataclass
class Row:
    cohort: str
    patients: int
    method: str
    limit: str
    wall: float
    status: str
    objective: int
    gap: float
    median: float | None
    p90: float | None
    unschedulable: int
    violations: int | None  # None: not judged (the relaxation)


def _run(name: str, problem: Problem, method: str, limit: float | None) -> Row:
    started = time.perf_counter()
    plan = solve(problem, method, SolveOptions(time_limit=limit or 30.0))
    wall = time.perf_counter() - started
    s = plan.stats
    return Row(
        cohort=name,
        patients=s["patients"],
        method=method,
        limit=f"{limit:g} s" if limit else "-",
        wall=wall,
        status=s["status"],
        objective=s["objective"],
        gap=s["gap"],
        median=s["median_approval_to_infusion_days"],
        p90=s["p90_approval_to_infusion_days"],
        unschedulable=s["unschedulable"],
        # The capacity-free plan is a relaxation: it ignores other patients by design.
        violations=None if method == "capacity-free" else len(check_plan(problem, plan)),
    )


def _suite(quick: bool) -> list[tuple[str, Problem, list[float]]]:
    """(name, problem, CP-SAT time limits) to run."""
    suite = [
        ("small", load_problem(COHORTS / "small.json"), [10]),
        ("regional", load_problem(COHORTS / "regional.json"), [10]),
        ("oversubscribed", load_problem(COHORTS / "oversubscribed.json"), [10]),
    ]
    if quick:
        return suite
    suite.append(("national", load_problem(COHORTS / "national.json"), [60, 300]))
    # Load sweep: six months of referrals on the one-centre default site (the
    # regional cohort is the 100 point), then a national year twice the fixture's size.
    for site, size, days, window, limit in (
        ("default", 50, 245, 182, 10),
        ("default", 150, 245, 182, 10),
        ("default", 200, 245, 182, 10),
        ("national", 2000, 365, 275, 60),
    ):
        name = f"sweep-{site}-{size}"
        raw = generate_cohort(
            name=name,
            seed=size,
            patients=size,
            horizon_start=date(2027, 1, 4),
            horizon_days=days,
            approval_window_days=window,
            site=site,
        )
        suite.append((name, parse_cohort(raw, source=name), [limit]))
    return suite


def _table(rows: list[Row]) -> str:
    header = (
        "| cohort | patients | method | limit | wall s | status | objective | gap to bound "
        "| median d | p90 d | unschedulable | violations |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r.cohort} | {r.patients} | {r.method} | {r.limit} | {r.wall:.1f} | {r.status} | {r.objective} "
            f"| {100 * r.gap:.2f} % | {r.median} | {r.p90} | {r.unschedulable} "
            f"| {'-' if r.violations is None else r.violations} |"
        )
    return "\n".join(lines)


def main(quick: bool = False, markdown: Path | None = None) -> int:
    rows: list[Row] = []
    for name, problem, limits in _suite(quick):
        rows.append(_run(name, problem, "capacity-free", None))
        rows.append(_run(name, problem, "greedy", None))
        for limit in limits:
            rows.append(_run(name, problem, "cp-sat", limit))
        print(_table(rows[-(2 + len(limits)) :]).split("\n", 2)[2], flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = _table(rows)
    print()
    print(table)
    print(f"\npeak memory (max RSS of this process): {peak_mb:.0f} MB")
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(table + f"\n\nPeak memory: {peak_mb:.0f} MB\n", encoding="utf-8")
    return 1 if any(r.violations for r in rows) else 0
