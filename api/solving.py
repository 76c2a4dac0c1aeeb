"""Solves run here: a small, bounded thread pool of their own, never the event loop or the
web server's shared pool. More requests than ``threads`` wait their turn; past ``queue``
waiting ones the caller gets SolverBusy (HTTP 503) instead of an unbounded wait.

CP-SAT solvers created in these threads do not catch SIGINT (solver.params.new_solver
sets ``catch_sigint_signal`` off outside the main thread), so Ctrl-C stops the server.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor


class SolverBusy(Exception):
    """Too many solves are waiting (HTTP 503)."""


SOLVER_NICENESS = 10  # solves yield the CPU to the requests a person is waiting on (reads, confirms)


def _yield_to_requests() -> None:
    """Run this solver thread (and the solver's own threads, which inherit it) at a lower CPU priority.
    Linux schedules threads one by one, so this lowers the solves, not the server's request threads."""
    try:
        thread = threading.get_native_id()
        # never above the process's own priority (a server already started with nice keeps it)
        os.setpriority(os.PRIO_PROCESS, thread, max(SOLVER_NICENESS, os.getpriority(os.PRIO_PROCESS, thread)))
    except (AttributeError, OSError):  # not Linux, or not allowed: solves keep the default priority
        pass


class SolverPool:
    def __init__(self, threads: int, queue: int | None = None):
        self.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="v2v-solver", initializer=_yield_to_requests
        )
        self.slots = threading.BoundedSemaphore(threads + (queue if queue is not None else 8 * threads))
        self.closed = False

    def run(self, fn, *args):
        """Run ``fn(*args)`` on a solver thread and wait for its result (exceptions propagate)."""
        if not self.slots.acquire(blocking=False):
            raise SolverBusy("the solver is busy with other requests; try again in a few seconds")
        try:
            return self.executor.submit(fn, *args).result()
        finally:
            self.slots.release()

    def shutdown(self) -> None:
        self.closed = True
        self.executor.shutdown(wait=False, cancel_futures=True)
