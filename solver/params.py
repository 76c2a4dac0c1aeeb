"""CP-SAT import and parameters, in one place.

``cp_model`` is imported here once (it costs ~0.5 s and ~90 MB). Solves that
run outside the main thread must not catch SIGINT, or Ctrl-C during a threaded
solve aborts the whole process.
"""

from __future__ import annotations

import threading

from ortools.sat.python import cp_model  # noqa: F401  (re-exported)

MAX_MEMORY_MB = 4096
# In reproducible mode the time limit is deterministic time; wall time is only a safety net.
REPRODUCIBLE_WALL_FACTOR = 20


def new_solver(time_limit: float, workers: int = 8, reproducible: bool = False) -> cp_model.CpSolver:
    """A CpSolver with our limits set.

    Reproducible mode (tests, audits): one worker, interleaved search, fixed
    seed and a deterministic-time limit, so the same input gives the same plan
    on any machine load.
    """
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.max_memory_in_mb = MAX_MEMORY_MB
    params.catch_sigint_signal = threading.current_thread() is threading.main_thread()
    if reproducible:
        params.num_workers = 1
        params.interleave_search = True
        params.random_seed = 0
        params.max_deterministic_time = time_limit
        params.max_time_in_seconds = time_limit * REPRODUCIBLE_WALL_FACTOR
    else:
        params.num_workers = workers
        params.max_time_in_seconds = time_limit
    return solver
