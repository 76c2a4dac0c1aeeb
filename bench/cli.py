"""Benchmark: ``v2v solve COHORT --method greedy`` as a whole process, from its start to its exit.

    v2v-bench --cli [--runs N] [--markdown FILE]

What a coordinator waits for at the command line: the interpreter starting, the
imports, reading the cohort, the groundwork every method shares (the instance,
each patient's capacity-free schedule, who cannot be scheduled alone), the
greedy plan, the rule checker and the summary. One warm-up run, then ``runs``
counted runs per cohort; minimum, median and maximum wall seconds, peak memory
of the largest run, and the load average (``os.getloadavg``) before and after,
since this 2-core machine is shared. Measured here and quoted in the README,
never asserted in tests.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cohorts import COHORT_FILES as COHORTS

COHORT_NAMES = ("regional", "national")


@dataclass
class Timing:
    cohort: str
    walls: list[float]
    peak_mb: float
    load_before: float
    load_after: float

    def row(self) -> str:
        walls = sorted(self.walls)
        return (
            f"| {self.cohort} | greedy | {len(walls)} | {walls[0]:.2f} | {statistics.median(walls):.2f} "
            f"| {walls[-1]:.2f} | {self.peak_mb:.0f} | {self.load_before:.1f} / {self.load_after:.1f} |"
        )


def _command(cohort: Path) -> list[str]:
    return [sys.executable, "-m", "api.cli", "solve", str(cohort), "--method", "greedy"]


def _once(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_cohort(name: str, runs: int) -> Timing:
    command = _command(COHORTS / f"{name}.json")
    load_before = os.getloadavg()[0]
    _once(command)  # warm-up: the file cache, not counted
    walls = [_once(command) for _ in range(runs)]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return Timing(name, walls, peak_mb, load_before, os.getloadavg()[0])


def main(runs: int = 5, markdown: Path | None = None) -> int:
    header = "| cohort | method | runs | min s | median s | max s | peak MB | load before / after |"
    lines = [header, "|" + "---|" * 8]
    for name in COHORT_NAMES:
        lines.append(time_cohort(name, runs).row())
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print()
    print(table)
    if markdown:
        path = markdown.with_name(markdown.stem + "-cli" + markdown.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table + "\n", encoding="utf-8")
    return 0
