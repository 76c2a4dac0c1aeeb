"""The solver pool: solves run on their own threads, at a lower CPU priority than the requests people
wait on, and a full queue is refused (503) rather than waited on without end."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from api.solving import SOLVER_NICENESS, SolverBusy, SolverPool


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")
def test_a_solve_runs_below_the_request_threads_priority():
    caller = _niceness()
    pool = SolverPool(1)
    try:
        # at the solver's niceness, or lower still if the whole process already runs lower
        assert pool.run(_niceness) == max(SOLVER_NICENESS, caller)
        assert _niceness() == caller  # the caller's thread is untouched
    finally:
        pool.shutdown()


def test_a_full_queue_is_refused_not_waited_on():
    pool = SolverPool(1, queue=0)
    started, release = threading.Event(), threading.Event()

    def hold():
        started.set()
        release.wait(10)

    holder = threading.Thread(target=pool.run, args=(hold,))
    holder.start()
    try:
        assert started.wait(10)
        with pytest.raises(SolverBusy):
            pool.run(lambda: None)
    finally:
        release.set()
        holder.join(10)
        pool.shutdown()
