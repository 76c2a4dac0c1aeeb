"""Benchmark: column generation, CP-SAT, the greedy baseline and the capacity-free bound, side by side.

    v2v-bench [--quick] [--markdown FILE]      (or: python -m bench)

Prints one row per cohort and method: patients, wall time, status, objective,
the proven bound and which method proved it, the gap to it, seconds to the
bound and to the plan (from the solve's start), median, p90 and maximum
approval-to-infusion days, patients left out, peak memory and the rule
checker's verdict. Each row runs in a fresh process, so its peak memory is its
own. Every plan is checked; a benchmark row with a violation is a bug, not a
result. Timings are for this machine (2 cores, shared: quote ``uptime``);
they are measured here and reported in the README, never asserted in tests.
"""

from __future__ import annotations

import multiprocessing
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
    bound: int
    bound_method: str
    gap: float
    to_bound: float
    to_plan: float
    median: float | None
    p90: float | None
    longest: int | None
    unschedulable: int
    left_out: int  # for capacity
    left_out_min: int  # proven minimum
    peak_mb: float
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
        bound=s["best_bound"],
        bound_method=s["bound_method"],
        gap=s["gap"],
        to_bound=s["time_to_bound_s"],
        to_plan=s["time_to_plan_s"],
        median=s["median_approval_to_infusion_days"],
        p90=s["p90_approval_to_infusion_days"],
        longest=s["max_approval_to_infusion_days"],
        unschedulable=s["unschedulable"],
        left_out=s["unscheduled_for_capacity"],
        left_out_min=s["unscheduled_proven_minimum"],
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # The capacity-free plan is a relaxation: it ignores other patients by design.
        violations=None if method == "capacity-free" else len(check_plan(problem, plan)),
    )


def _suite(quick: bool) -> list[tuple[str, Problem, list[float]]]:
    """(name, problem, time limits) to run: CP-SAT at each limit, column generation at the first."""
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
        ("default", 150, 245, 182, 60),  # over-subscribed: the target is the count left out within 60 s
        ("default", 200, 245, 182, 60),
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
        "| cohort | patients | method | limit | wall s | status | left out: plan / proven min | objective "
        "| bound (by) | gap | to bound s | to plan s | median / p90 / max d | unschedulable | peak MB | violations |"
    )
    lines = [header, "|" + "---|" * 16]
    for r in rows:
        lines.append(
            f"| {r.cohort} | {r.patients} | {r.method} | {r.limit} | {r.wall:.1f} | {r.status} "
            f"| {r.left_out} / {r.left_out_min} | {r.objective} "
            f"| {r.bound} ({r.bound_method}) | {100 * r.gap:.2f} % | {r.to_bound:.1f} | {r.to_plan:.1f} "
            f"| {r.median} / {r.p90} / {r.longest} | {r.unschedulable} | {r.peak_mb:.0f} "
            f"| {'-' if r.violations is None else r.violations} |"
        )
    return "\n".join(lines)


def _fresh(pool_context, name: str, problem: Problem, method: str, limit: float | None) -> Row:
    """One row in a process of its own (its peak memory is the row's alone)."""
    with pool_context.Pool(1) as pool:
        return pool.apply(_run, (name, problem, method, limit))


def main(quick: bool = False, markdown: Path | None = None) -> int:
    context = multiprocessing.get_context("spawn")
    rows: list[Row] = []
    for name, problem, limits in _suite(quick):
        runs = [("capacity-free", None), ("greedy", None), ("colgen", limits[0])] + [("cp-sat", x) for x in limits]
        for method, limit in runs:
            rows.append(_fresh(context, name, problem, method, limit))
        print(_table(rows[-len(runs) :]).split("\n", 2)[2], flush=True)
    table = _table(rows)
    print()
    print(table)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(table + "\n", encoding="utf-8")
    return 1 if any(r.violations for r in rows) else 0
