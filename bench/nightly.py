"""Benchmark of the nightly re-solve on the regional demo data (measured, never asserted in tests).

    v2v-bench --nightly [--markdown FILE]     (or: python -m bench --nightly ...)

1. A fresh SQLite database planned as ``v2v demo`` plans it (regional cohort, 10 s
   CP-SAT, every booking confirmed), "today" the cohort's first day.
2. Four weeks on (products collected, some in manufacture), the first nightly run:
   wall time of the whole run (read, solve, publish) against the 30 s target.
3. One event: a product in manufacture fails its release (out of specification,
   re-manufacture). Then, on the same state:
   - a **from-scratch** re-solve (``solver.solve``: every patient planned again, the
     same frozen steps, no move penalty), counted against the current plan;
   - the **nightly** run (``solver.resolve`` through ``api.nightly``, published).
   For both: bookings moved, and how many of them belong to patients the event
   did not touch; and the checker's verdict on the resulting plan. The same
   re-solve is also run unpublished by each method (``solver.resolve``: the
   column generation pipeline, the default, and CP-SAT alone): objective with
   the move penalty, proven bound, wall time.
4. The nightly run again on the unchanged state (the inputs' fingerprint is the same: no solve),
   and on the next day with no new event (a full solve): bookings moved.
"""

from __future__ import annotations

import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cohorts import DEMO_COHORT

COHORT = DEMO_COHORT
NIGHTLY_TIME_LIMIT = 20.0
DAYS_ON = 28


def _settings(database_url: str, today):
    from api.settings import Settings

    return Settings(
        database_url=database_url,
        today=today,
        solve_time_limit=10,
        nightly_time_limit=NIGHTLY_TIME_LIMIT,
        nightly_enabled=False,
        _env_file=None,
    )


def _run(sessions, settings, night) -> tuple[dict, float]:
    from api import nightly
    from api.db import JobRun

    started = time.perf_counter()
    run_id = nightly.claim_night(sessions, settings, night, "schedule")
    assert run_id is not None, f"the night of {night} has been run already"
    nightly.execute(sessions, settings, run_id)
    wall = time.perf_counter() - started
    with sessions() as session:
        run = session.get(JobRun, run_id)
        return {"status": run.status, "stats": dict(run.stats), "report": dict(run.report)}, wall


def _violations(sessions, settings) -> int:
    from api import state
    from pathway.rules import check_plan

    with sessions() as session:
        plan = state.current_plan(session)
        problem = state.held_problem(session, settings)
        return len(check_plan(problem, plan))


def _oos_patient(sessions, today) -> str:
    """A patient whose product is in manufacture today (the event the issue names)."""
    from api import state

    with sessions() as session:
        rows = state.current_rows(session)
    making = sorted(b.patient_id for b in rows if b.step == "manufacture" and b.first_day < today <= b.last_day)
    if not making:
        raise SystemExit("no product in manufacture on the benchmark day: pick another DAYS_ON")
    return making[0]


def main(markdown: Path | None = None) -> int:
    from api import nightly, services, state
    from api.audit import Actor
    from api.db import make_engine, make_sessionmaker
    from api.setup import init_database, load_cohort
    from api.unit_of_work import Database
    from pathway.cohort import load_problem
    from pathway.rules import check_plan
    from solver.resolve import resolve
    from solver.solve import SolveOptions, solve

    start = load_problem(COHORT).horizon.start
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="v2v-bench-nightly-") as workdir:
        url = f"sqlite:///{Path(workdir) / 'nightly.db'}"
        settings = _settings(url, start)
        init_database(settings)
        t = time.perf_counter()
        load_cohort(settings, COHORT, time_limit=10)
        print(f"regional cohort planned and confirmed in {time.perf_counter() - t:.1f} s")
        later = _settings(url, start + timedelta(days=DAYS_ON))
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            first, wall = _run(sessions, later, later.today)
            s = first["stats"]
            rows.append(("first nightly run, 4 weeks on (wall s, target <= 30)", f"{wall:.1f}"))
            rows.append(
                (
                    "  its solve: status / bound method / time to plan s / patients",
                    f"{s.get('status')} / {s.get('bound_method')} / {s.get('time_to_plan_s')} / {s.get('patients')}",
                )
            )
            rows.append(("  bookings moved / added", f"{s.get('bookings_moved', 0)} / {s.get('bookings_added', 0)}"))

            patient = _oos_patient(sessions, later.today)
            with Database(sessions).plan_write() as work:
                services.out_of_specification(
                    work,
                    patient,
                    "re-manufacture",
                    "benchmark: viability below specification",
                    later,
                    Actor("bench", "coordinator"),
                )
            with sessions() as session:
                data = nightly.prepare(session, later)
            t = time.perf_counter()
            scratch = solve(data.problem, options=SolveOptions(time_limit=NIGHTLY_TIME_LIMIT, workers=4))
            scratch_wall = time.perf_counter() - t
            after = {(b.patient, b.step): (b.first_day, b.last_day) for b in scratch.bookings}
            moved = [b for b in data.current.bookings if after.get((b.patient, b.step)) != (b.first_day, b.last_day)]
            scratch_unaffected = [b for b in moved if b.patient != patient]
            scratch_violations = len(check_plan(data.problem, scratch))
            by_method = []
            for method in ("colgen", "cp-sat"):
                t = time.perf_counter()
                options = SolveOptions(time_limit=NIGHTLY_TIME_LIMIT, workers=4)
                r = resolve(data.problem, data.current, data.confirmed, options, method=method).stats
                by_method.append(
                    (
                        f"  re-solve by {method}: objective with moves / proven bound (method), wall s",
                        f"{r['objective_with_moves']} / {r.get('best_bound')} ({r.get('bound_method')}), "
                        f"{time.perf_counter() - t:.2f}",
                    )
                )

            second, wall = _run(sessions, later, later.today + timedelta(days=1))
            s = second["stats"]
            rows.append((f"after one OOS event ({patient}, re-manufacture): nightly run wall s", f"{wall:.1f}"))
            rows.append(
                (
                    "  nightly: bookings moved (of patients the event did not touch), removed",
                    f"{s.get('bookings_moved', 0)} ({s.get('moved_unaffected', 0)}), {s.get('bookings_removed', 0)}",
                )
            )
            rows.append(
                (
                    "  nightly: bookings added, status, checker violations",
                    f"{s.get('bookings_added', 0)}, {second['status']}, {_violations(sessions, later)}",
                )
            )
            rows.append(
                (
                    "  from-scratch re-solve: bookings moved (of patients the event did not touch)",
                    f"{len(moved)} ({len(scratch_unaffected)})",
                )
            )
            rows.append(
                (
                    "  from-scratch re-solve: patients moved, wall s, checker violations",
                    f"{len({b.patient for b in moved})}, {scratch_wall:.1f}, {scratch_violations}",
                )
            )
            rows.append(
                (
                    "  objective: current -> nightly / from scratch",
                    f"{s.get('current_objective')} -> {s.get('objective')} / {scratch.stats.get('objective')}",
                )
            )
            rows.extend(by_method)

            third, wall = _run(sessions, later, later.today + timedelta(days=2))
            rows.append(
                (
                    "the same day again, nothing changed: bookings moved, wall s",
                    f"{third['stats'].get('bookings_moved', 0)}, {wall:.2f}",
                )
            )
            tomorrow = _settings(url, later.today + timedelta(days=1))
            fourth, wall = _run(sessions, tomorrow, later.today + timedelta(days=3))  # the nights are ledger keys only
            s = fourth["stats"]
            rows.append(
                (
                    "the next day, no new event (a full solve): bookings moved / removed, status, wall s",
                    f"{s.get('bookings_moved', 0)} / {s.get('bookings_removed', 0)}, {fourth['status']}, {wall:.1f}",
                )
            )
            with sessions() as session:
                rows.append(("current plan version after the runs", str(state.current_version(session).id)))
        finally:
            engine.dispose()
    rows.append(
        (
            "peak memory of the benchmark process (MB)",
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
        )
    )

    table = "| measure | value |\n|---|---|\n" + "".join(f"| {name} | {value} |\n" for name, value in rows)
    print(table)
    if markdown is not None:
        path = markdown.with_name(markdown.stem + "-nightly" + markdown.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table)
        print(f"written to {path}")
    return 0
